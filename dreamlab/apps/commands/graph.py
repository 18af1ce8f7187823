"""`dreamlab graph MODEL`: the architecture as a diagram (DOT text, or SVG/PNG/PDF through Graphviz)."""
from __future__ import annotations

import argparse

from dreamlab.apps.args import (REPLACED, add_positional_model, image_size, nonempty, output_path, positional_model,
                                positive_int)

DESCRIPTION = ("Draw MODEL's data flow: one node per module at --depth with its dotted address, type, key "
               "hyperparameters, output shape and parameters; functional ops (concat, add, relu, flatten) are "
               "nodes too, coloured by kind. The title gives the total parameters and the input. Without -o the "
               "DOT text is printed; .svg, .png and .pdf need Graphviz's `dot`.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_positional_model(p, "recipe name, recipe .toml or torchvision model name")
    p.add_argument("-o", "--out", type=output_path,
                   help="output file: .dot/.gv (text), .svg, .png or .pdf (Graphviz)" + REPLACED)
    p.add_argument("--rankdir", type=str.upper, default="TB",
                   help="layout direction: TB, LR, BT or RL (default: %(default)s)")
    p.add_argument("--depth", type=positive_int, default=2,
                   help="how far modules are opened: 1 = top-level modules (default: %(default)s; "
                        "ResNet's residual adds show at 3)")
    p.add_argument("--size", type=image_size,
                   help="input size in pixels, N or HEIGHTxWIDTH such as 96x128 (default: the recipe's)")
    p.add_argument("--weights", default="none", type=nonempty,
                   help="weights to load (default: none; shapes do not depend on them)")


def run(args: argparse.Namespace) -> int:
    from dreamlab.inspect.graph import check_output, check_rankdir, drawn_graph
    from dreamlab.io import check_writable

    name = positional_model(args)
    check_rankdir(args.rankdir)  # before building the model
    if args.out is not None:
        check_output(args.out)
        check_writable(args.out, folder=False)
    dot_text = drawn_graph(name, rankdir=args.rankdir, depth=args.depth, size=args.size, out=args.out,
                           weights=args.weights, option="--size")
    print(args.out if args.out is not None else dot_text, end="\n" if args.out is not None else "")
    return 0

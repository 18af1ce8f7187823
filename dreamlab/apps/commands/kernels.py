"""`dreamlab kernels MODEL LAYER`: a conv layer's weights as a PNG grid."""
from __future__ import annotations

import argparse
from pathlib import Path

from dreamlab.apps.args import REPLACED, add_positional_model, nonempty, output_path, positional_model, positive_int

DESCRIPTION = ("Save the weights of conv LAYER as a grid: RGB filters (the first layer) in colour, deeper layers one "
               "grey tile per (output, input) pair, a row per output channel, or --sum-inputs. Each tile is "
               "stretched on its own unless --shared-scale. The grid's geometry is in the PNG's text chunks.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_positional_model(p, "recipe name, recipe .toml or torchvision model name", layer_follows=True)
    p.add_argument("layer", help="a conv layer address, e.g. conv1.conv (`dreamlab layers MODEL` lists them)")
    p.add_argument("--weights", default="default", type=nonempty,
                   help="'default' (the recipe's), 'none' (random init), a torchvision weights name, or PATH")
    p.add_argument("-o", "--out", type=output_path, help="output PNG (default: MODEL_LAYER_kernels.png)" + REPLACED)
    p.add_argument("--shared-scale", action="store_true",
                   help="one scale for all tiles, zero at mid-grey (default: each tile stretched on its own)")
    p.add_argument("--sum-inputs", action="store_true", help="one tile per filter, its input channels summed")
    p.add_argument("--limit", type=positive_int, default=64,
                   help="show at most this many output (and input) channels (default: %(default)s)")
    p.add_argument("--scale", type=positive_int, help="pixels per weight (default: tiles at least 28 px wide)")


def run(args: argparse.Namespace) -> int:
    from dreamlab.inspect.kernels import kernels
    from dreamlab.io import check_output_file, safe_name

    name = positional_model(args)
    out = args.out or Path(f"{safe_name(Path(str(name)).stem)}_{safe_name(args.layer)}_kernels.png")
    check_output_file(out)  # before the model loads
    kernels(name, args.layer, shared_scale=args.shared_scale, sum_inputs=args.sum_inputs, limit=args.limit,
            scale=args.scale, out=out, weights=args.weights)
    print(out)
    return 0

"""`dreamlab grid MODEL LAYER --image PHOTO`: an activation grid, what LAYER sees in each cell of a photo."""
from __future__ import annotations

import argparse
import sys

from dreamlab.apps.args import (EXIT_INTERRUPTED, add_batch_render, add_device_argument, add_model_layer_photo,
                                add_photo_out, add_photo_size, photo_output, positional_model, positive_int)

DESCRIPTION = ("Split LAYER's map of PHOTO into CELLS x CELLS cells and render, for each, an image along the "
               "cell's mean activation vector (all cells in one batch, cells alike sharing part of their image), "
               "tiled in the photo's layout (lucid's activation grid, from The Building Blocks of "
               "Interpretability).")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_layer_photo(p, "layer address, e.g. features.22", "grid shows one photo per run")
    p.add_argument("--cells", type=positive_int, default=6,
                   help="the grid is CELLS x CELLS, at most the layer map's shorter side (default: 6)")
    p.add_argument("--cell-size", type=positive_int, default=64, metavar="PX",
                   help="each cell's render in pixels, at least 8 (default: 64)")
    add_photo_size(p)
    add_batch_render(p)
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--cossim-power", type=float, default=1.0, metavar="P",
                   help="score each position's dot product with the cell's vector times its cosine to the power P, "
                        "0 to 32 (default: 1, as the Building Blocks article; 0: the dot product, as lucid's "
                        "grid notebook)")
    p.add_argument("--shared", type=float, default=0.5, metavar="W",
                   help="weight of the image parts shared by cells alike, 0 to 1 (default: 0.5, lucid's; 0: each "
                        "cell on its own)")
    add_device_argument(p)
    add_photo_out(p, "grid")


def run(args: argparse.Namespace) -> int:
    from dreamlab.optvis.activation_grid import activation_grid
    from dreamlab.optvis.progress import DeferredSigint

    name = positional_model(args)
    out = photo_output(args, name, "grid")
    options = {key: value for key, value in (("steps", args.steps), ("lr", args.lr)) if value is not None}
    grid = activation_grid(name, args.image, args.layer, cells=args.cells, cell_size=args.cell_size,
                           cossim_power=args.cossim_power, shared=args.shared, photo_size=args.photo_size,
                           weights=args.weights,
                           seed=args.seed, device=args.device, progress=True, **options)
    with DeferredSigint():  # a Ctrl-C now must not lose the renders
        grid.save(out)
    print(out)
    if grid.renders.interrupted:
        print("dreamlab: interrupted; saved the grid with each cell's image as far as it got", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0

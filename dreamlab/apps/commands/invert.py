"""`dreamlab invert MODEL LAYERS --image PHOTO`: feature inversion, what each layer keeps of a photo."""
from __future__ import annotations

import argparse
import sys

from dreamlab.apps.args import (EXIT_INTERRUPTED, add_batch_render, add_device_argument, add_model_layer_photo,
                                add_photo_out, add_photo_size, photo_output, positional_model)

DESCRIPTION = ("Render, for each layer of LAYERS, an image whose activations there match PHOTO's, position by "
               "position (Mahendran & Vedaldi's feature inversion, with the render engine's parameterization and "
               "transforms; the photo goes through the same transforms). Shallow layers give the photo back, deep "
               "ones its parts. --mode caricature maximizes the dot product with the photo's activations instead "
               "(lucid's caricature). The figure shows the photo and each render with its score (1: the photo's "
               "own activations).")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_layer_photo(p, "one layer address, or a comma-separated list (one image each), e.g. "
                             "features.8,features.22", "invert reads one photo per run")
    p.add_argument("--mode", choices=("match", "caricature"), default="match",
                   help="match: the photo's activations (default); caricature: along them, exaggerated (lucid's)")
    p.add_argument("--cossim-power", type=float, default=0.0, metavar="P",
                   help="with --mode caricature: weigh the dot product by its cosine to the power P, 0 to 32 "
                        "(default: 0, lucid's)")
    add_photo_size(p)
    add_batch_render(p)
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--transforms", help="transform preset: standard, small, jitter, none (default: the recipe's)")
    add_device_argument(p)
    add_photo_out(p, "invert")


def run(args: argparse.Namespace) -> int:
    from dreamlab.errors import DreamlabError
    from dreamlab.optvis.inversion import invert
    from dreamlab.optvis.progress import DeferredSigint

    if args.cossim_power and args.mode != "caricature":
        raise DreamlabError("--cossim-power weighs a caricature's dot product: add --mode caricature, or leave "
                            "--cossim-power out")
    name = positional_model(args)
    out = photo_output(args, name, "invert")
    options = {key: value for key, value in (("steps", args.steps), ("lr", args.lr),
                                             ("transforms", args.transforms)) if value is not None}
    found = invert(name, args.image, args.layer, mode=args.mode, cossim_power=args.cossim_power,
                   photo_size=args.photo_size, weights=args.weights, seed=args.seed, device=args.device,
                   progress=True, **options)
    with DeferredSigint():  # a Ctrl-C now must not lose the renders
        found.save(out)
    print(out)
    scores = ", ".join(f"{layer} {score:.3f}" for layer, score in zip(found.layers, found.scores))
    print(f"dreamlab: {found.mode} scores (1: the photo's own activations): {scores}", file=sys.stderr)
    if found.renders.interrupted:
        print("dreamlab: interrupted; saved each render as far as it got", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0

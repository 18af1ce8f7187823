"""`dreamlab features MODEL LAYER --image PHOTO`: the activation maps a photo produces at a layer."""
from __future__ import annotations

import argparse

from dreamlab.apps.args import add_model_layer_photo, add_photo_out, photo_output, positional_model, positive_int

DESCRIPTION = ("Run PHOTO through MODEL (resized, cropped and normalized as the recipe says) and save the "
               "activation maps of LAYER's strongest channels (by mean activation) as a labelled grid.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_layer_photo(p, "layer address, e.g. inception4c", "features shows one photo per run")
    p.add_argument("--top", type=positive_int,
                   help="show the K strongest channels (default: all up to 64 channels, else 64)")
    add_photo_out(p, "features")


def run(args: argparse.Namespace) -> int:
    from dreamlab.inspect.features import features

    name = positional_model(args)
    out = photo_output(args, name, "features")
    features(name, args.layer, args.image, top=args.top, out=out, weights=args.weights)
    print(out)
    return 0

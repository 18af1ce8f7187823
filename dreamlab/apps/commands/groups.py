"""`dreamlab groups MODEL LAYER --image PHOTO --groups K`: a photo's activations factored into neuron groups (NMF),
each shown as a map over the photo and rendered as a feature visualization."""
from __future__ import annotations

import argparse
import sys

from dreamlab.apps.args import (EXIT_INTERRUPTED, add_batch_render, add_device_argument, add_model_layer_photo,
                                add_photo_out, add_photo_size, check_image_size, image_size, photo_output,
                                positional_model, positive_int)

DESCRIPTION = ("Factor the activations PHOTO produces at LAYER (>= 0: a layer after a ReLU) into K neuron groups "
               "with non-negative matrix factorization (lucid's Building Blocks): where in the photo each group "
               "is active, and a render of each group's direction. Writes the figure (FILE.png) and the "
               "directions (FILE.npy, for `dreamlab render LAYER --direction FILE.npy`).")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_layer_photo(p, "layer address after a ReLU, e.g. features.22", "groups factors one photo per run")
    p.add_argument("--groups", "-k", type=positive_int, default=6, help="how many groups (default: 6, as lucid)")
    p.add_argument("--seed", type=int, default=0, help="seed of the factorization's start and of the renders "
                                                       "(default: 0)")
    p.add_argument("--no-render", action="store_true", help="only the maps: render no group")
    add_batch_render(p)
    p.add_argument("--size", type=image_size, help="render size, N or HEIGHTxWIDTH (default: the recipe's)")
    p.add_argument("--cossim-power", type=float, default=1.0, metavar="P",
                   help="weight each position by its cosine similarity to the group's direction to the power P, "
                        "0 to 32 (default: 1; 0: the plain dot product, as lucid's notebook)")
    add_photo_size(p)
    add_device_argument(p)
    add_photo_out(p, "groups", "; the directions go beside it as .npy")


def run(args: argparse.Namespace) -> int:
    from dreamlab.errors import DreamlabError
    from dreamlab.inspect.groups import neuron_groups
    from dreamlab.io import check_output_file
    from dreamlab.optvis.progress import DeferredSigint

    name = positional_model(args)
    if args.no_render:
        given = [flag for flag, value in (("--steps", args.steps), ("--lr", args.lr), ("--size", args.size))
                 if value is not None]
        if given:
            raise DreamlabError(f"{given[0]} sets the renders, which --no-render leaves out: drop one of them")
    check_image_size("--size", args.size)
    out = photo_output(args, name, "groups")  # checked before the model loads, as the directions' file
    directions = check_output_file(out.with_suffix(".npy"), suffixes=(".npy",), reads=[args.image])
    found = neuron_groups(name, args.image, args.layer, groups=args.groups, seed=args.seed,
                          render=not args.no_render, steps=args.steps, lr=args.lr, size=args.size,
                          cossim_power=args.cossim_power, photo_size=args.photo_size, device=args.device,
                          weights=args.weights, progress=True)
    with DeferredSigint():  # a Ctrl-C now must not lose the groups or their renders
        found.save(out)
        found.save_directions(directions)
    print(out)
    print(directions)
    print(f"dreamlab: {len(found.maps)} groups at {found.layer}, reconstruction error {found.error:.3f} "
          f"(relative, after {found.iterations} NMF sweeps)", file=sys.stderr)
    if found.interrupted:
        print("dreamlab: interrupted; saved the maps, and the renders as they were", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0

"""`dreamlab examples MODEL LAYER:UNITS --images DIR`: the photos that drive units hardest, cropped to what each
unit saw (dataset examples, to set beside a unit's render)."""
from __future__ import annotations

import argparse
import re
from pathlib import Path

from dreamlab.apps.args import (REPLACED, add_positional_model, nonempty, output_path, photo_path, positional_model,
                                positive_int)

DESCRIPTION = ("Run every image through MODEL (shorter side resized to the recipe's size or --size, normalized as "
               "the recipe says) and save, for each unit, the images that drive it hardest: a channel's strongest "
               "position, cropped to that position's receptive field; a logit's whole image. A row per unit, best "
               "first.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_positional_model(p, "recipe name, recipe .toml or torchvision model name", layer_follows=True)
    p.add_argument("layer", metavar="LAYER:UNITS",
                   help="the units, e.g. features.22:0-7, inception4c:97,12, logit:3 or logit:tabby (a class name, "
                        "as render takes it; `dreamlab layers MODEL`)")
    p.add_argument("--images", "-i", nargs="+", action="extend", type=photo_path, required=True, metavar="IMAGE",
                   help="folders of PNG/JPEG photos, image files, or china / flower (scikit-learn's sample photos); "
                        "an image given twice is read once")
    p.add_argument("--weights", default="default", type=nonempty,
                   help="'default' (the recipe's), 'none' (random init), a torchvision weights name, or PATH")
    p.add_argument("--top", type=positive_int, default=8, help="images per unit (default: 8)")
    p.add_argument("--size", type=positive_int,
                   help="the images' shorter side in pixels (default: the recipe's input size)")
    p.add_argument("-o", "--out", type=output_path,
                   help="output PNG (default: MODEL_LAYER_UNITS_examples.png)" + REPLACED)


def run(args: argparse.Namespace) -> int:
    import sys

    from dreamlab.errors import DreamlabError
    from dreamlab.inspect.examples import examples
    from dreamlab.io import check_output_file, safe_name
    from dreamlab.optvis.capture import OUTPUT
    from dreamlab.optvis.units import parse_units

    name = positional_model(args)
    # a class name may hold ':' ('logit:tabby' has its layer first), so the layer is what comes before the first
    layer, colon, units_text = args.layer.partition(":") if args.layer.startswith(f"{OUTPUT}:") else \
        args.layer.rpartition(":")
    if not colon or not layer or not units_text.strip():
        raise DreamlabError(f"give the units as LAYER:UNITS, like features.22:0-7 or logit:3, got {args.layer!r}")
    if layer != OUTPUT and re.search(r"[:\s+*/()@]", layer):
        raise DreamlabError(f"examples takes one LAYER:UNITS, like conv2:1,2 or features.22:0-7, not an expression "
                            f"or a neuron position; got {args.layer!r}")
    if re.fullmatch(r"[\d\s,-]+", units_text):
        units: list[int] | str = parse_units(units_text)
    elif layer == OUTPUT:
        units = units_text  # a class name (tabby, tiger_cat, 'tiger cat'), read with the model's class names
    else:
        raise DreamlabError(f"cannot read {units_text!r} as units of {layer!r}: give channel numbers like 0-15 or "
                            f"0-3,8 (class names, as in logit:tabby, go with the logit)")
    out = args.out or Path(f"{safe_name(Path(str(name)).stem)}_{safe_name(args.layer)}_examples.png")
    check_output_file(out, reads=args.images)  # before the model loads
    images = args.images[0] if len(args.images) == 1 else args.images
    found = examples(name, layer, units, images, top=args.top, size=args.size, weights=args.weights, out=out)
    alike = {record["name"] for record in found.images if "same_picture" in record}
    for again, first in found.duplicates.items():
        same = ("is given more than once" if again == first else
                f"is the same picture as {first} at another size or format" if again in alike else
                f"is the same as {first} (same sha256)")
        print(f"dreamlab: note: image {again} {same}; it is read once", file=sys.stderr)
    if found.never_on:
        labels = [f"{layer}:{unit}" for unit in found.never_on]
        names = ", ".join(labels[:8]) + (f" and {len(labels) - 8} more" if len(labels) > 8 else "")
        one = len(labels) == 1
        print(f"dreamlab: note: {names} {'is' if one else 'are'} 0 everywhere on every image: no photo turns "
              f"{'it' if one else 'them'} on, so {'its row is' if one else 'their rows are'} one tile saying so; try "
              f"more or other photos (--images)", file=sys.stderr)
    print(out)
    return 0

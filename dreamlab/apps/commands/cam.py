"""`dreamlab cam MODEL --image PHOTO`: Grad-CAM or Grad-CAM++ of a target, overlaid on the photo."""
from __future__ import annotations

import argparse
from pathlib import Path

from dreamlab.apps.args import add_device_argument, add_positional_model, output_path, positional_model, positive_int, \
    recipe_names

DESCRIPTION = ("Where does the model look: the class activation map (Grad-CAM or Grad-CAM++) of a target at a "
               "layer, upsampled to the photo and overlaid with a colour map (FILE.png), and the raw map at the "
               "photo's size (FILE.npy).")


def add_subject_arguments(p: argparse.ArgumentParser) -> None:
    """MODEL, --image, --target, --weights, --recipe, --size, --device, --out: shared with `dreamlab attribute`."""
    add_positional_model(p, f"recipe name ({recipe_names()}) or a torchvision model name")
    p.add_argument("--image", "-i", type=Path, required=True, help="the photo (PNG or JPEG)")
    p.add_argument("--target", "-t",
                   help="an objective: logit:281, logit:tabby, inception4c:97, ... (default: the model's top class)")
    p.add_argument("--weights", default="default",
                   help="'default' (the recipe's, downloaded by torchvision on first use), 'none' (random init), "
                        "a torchvision weights name, or PATH to a state-dict file")
    p.add_argument("--size", type=positive_int, help="the model's input size (default: the recipe's)")
    add_device_argument(p)
    p.add_argument("-o", "--out", type=output_path,
                   help="output PNG (default: MODEL_TARGET_METHOD.png); the .npy goes beside it")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_subject_arguments(p)
    p.add_argument("--layer", "-l", help="layer address (default: the recipe's cam_layer, else the last spatial layer)")
    p.add_argument("--method", default="gradcam", help="gradcam or gradcam++ (default: %(default)s)")


def load_subject(args: argparse.Namespace):
    """(the Subject on --device, the photo as read [C, H, W], the model's input on that device): shared with
    `dreamlab attribute`. A bad --device is refused before the model loads."""
    from dreamlab.attribution.photos import read_photo
    from dreamlab.attribution.target import subject
    from dreamlab.devices import resolve_device
    from dreamlab.io import check_output_file

    device = resolve_device(args.device)
    if args.out is not None:
        check_output_file(args.out)  # before the model loads
    subj = subject(str(positional_model(args)), weights=args.weights)
    subj.model.to(device)
    photo, x = read_photo(args.image, subj, args.size)
    return subj, photo, x.to(device)


def run(args: argparse.Namespace) -> int:
    from dreamlab.attribution.api import cam_layer, gradcam
    from dreamlab.attribution.overlay import overlay
    from dreamlab.attribution.photos import default_output, predicted_class, save_outputs, to_photo_size

    subj, photo, x = load_subject(args)
    target = args.target or predicted_class(subj, x)
    layer = cam_layer(subj, x, args.layer)
    cam = gradcam(subj, x, target, layer, method=args.method)
    raw = to_photo_size(cam[0].cpu(), photo)[0].clamp(min=0)
    top = float(raw.max())
    picture = overlay(photo, raw / top if top > 0 else raw)
    out = args.out or default_output(subj.recipe.name, target, args.method)
    png, npy = save_outputs(picture, raw, out, {"dreamlab:model": subj.recipe.name, "dreamlab:target": target,
                                                  "dreamlab:layer": layer, "dreamlab:method": args.method,
                                                  "dreamlab:weights": str(args.weights)})
    print(f"{png} ({args.method} of {target} at {layer}; raw map in {npy})")
    return 0

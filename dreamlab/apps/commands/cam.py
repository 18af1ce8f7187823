"""`dreamlab cam MODEL --image PHOTO`: Grad-CAM or Grad-CAM++ of a target, overlaid on the photo."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dreamlab.apps.args import (REPLACED, add_device_argument, add_once_option, add_positional_model, nonempty,
                                note_zero_head, output_path, photo_path, positional_model, positive_int, recipe_names)
from dreamlab.errors import DreamlabError

DESCRIPTION = ("Where does the model look: the class activation map (Grad-CAM or Grad-CAM++) of a target at a "
               "layer, upsampled to the photo and overlaid with a colour map (FILE.png), and the raw map at the "
               "photo's size (FILE.npy).")


def add_subject_arguments(p: argparse.ArgumentParser) -> None:
    """MODEL, --image, --target, --weights, --recipe, --size, --device, --out: shared with `dreamlab attribute`."""
    add_positional_model(p, f"recipe name ({recipe_names()}) or a torchvision model name")
    add_once_option(p, "--image", "-i", type=photo_path, required=True,
                    once=f"{p.prog.split()[-1]} maps one photo per run: run it once per photo",
                    help="the photo (PNG or JPEG), or china or flower (scikit-learn's sample photos); one per run")
    add_once_option(p, "--target", "-t", type=target_text,
                    once=f"{p.prog.split()[-1]} maps one target per run: run it once per target",
                    help="an objective: logit:281, logit:tabby, inception4c:97, ... (default: the model's top class)")
    p.add_argument("--weights", default="default", type=nonempty,
                   help="'default' (the recipe's, downloaded by torchvision on first use), 'none' (random init), "
                        "a torchvision weights name, or PATH to a state-dict file")
    p.add_argument("--size", type=positive_int,
                   help="the model's input size: the photo's shorter side, its aspect kept where the model takes "
                        "any size (a longer side past 2048 is capped there, the shorter one follows), else the side of "
                        "the padded square (default: the recipe's)")
    add_device_argument(p)
    p.add_argument("-o", "--out", type=output_path,
                   help="output PNG (default: MODEL_TARGET_METHOD.png, with --layer MODEL_TARGET_LAYER_METHOD.png); "
                        "the .npy goes beside it" + REPLACED)


def target_text(text: str) -> str:
    """argparse type of --target: refuses an empty or blank one (an unset shell variable), which would otherwise
    fall back on the top class without a word."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty target; give an objective such as logit:3, or leave --target out "
                                         "for the model's top class")
    return text


def check_outputs(out: Path, default: bool, photo: object = None) -> None:
    """Refuse, before the attribution runs, a PNG or its .npy beside it that cannot be written, or that is the
    `photo` read; `default`: the name was made up (no -o), so say how to write elsewhere."""
    from dreamlab.io import check_output_file

    try:
        what = "default output" if default else "output"
        check_output_file(out, what=what, reads=[photo])
        check_output_file(out.with_suffix(".npy"), (".npy",), what, reads=[photo])
    except DreamlabError as exc:
        if not default:
            raise
        raise DreamlabError(f"{exc} (-o FILE.png writes elsewhere)") from None


def check_default_folder() -> None:
    """Without -o the outputs go to the current folder: refuse one that cannot be written before the model loads
    (the exact names, which need the target, are checked by `check_outputs` before the attribution runs)."""
    from dreamlab.io import check_writable

    try:
        here = Path.cwd()
    except OSError:  # the current folder was removed
        here = Path(".")
    try:
        check_writable(here, "the default output in the current folder", folder=True)
    except DreamlabError as exc:
        raise DreamlabError(f"{exc} (-o FILE.png writes elsewhere)") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_subject_arguments(p)
    p.add_argument("--layer", "-l", type=nonempty,
                   help="layer address (default: the recipe's cam_layer, else the last spatial layer; "
                        "never the target's own layer: then the last spatial layer before it)")
    p.add_argument("--method", "-M", default="gradcam", help="gradcam, gradcam++, layercam or scorecam (default: %(default)s)")


def load_subject(args: argparse.Namespace, writes: bool = True, trace: bool = False):
    """(the Subject on --device, the photo as read [C, H, W], how it became the model's input (a ModelInput), that
    input on the device, the forward that checked the model takes it (a `photos.ModelRun`; `trace`: traced, for
    the Grad-CAM layer)): shared with `dreamlab attribute`. A bad --device, and an output place that cannot be
    written (`writes`: the command writes files), are refused before the model loads."""
    from dreamlab.attribution.photos import check_model_takes, read_photo
    from dreamlab.attribution.target import subject
    from dreamlab.devices import resolve_device

    device = resolve_device(args.device)
    if writes and args.out is not None:
        check_outputs(args.out, default=False, photo=args.image)  # before the model loads
    elif writes:
        check_default_folder()
    subj = subject(str(positional_model(args)), weights=args.weights)
    subj.model.to(device)
    photo, fitted = read_photo(args.image, subj, args.size)
    if fitted.note:  # a long strip's input, not the one --size asks for
        print(f"dreamlab: note: {fitted.note}", file=sys.stderr)
    if writes:
        note_small_photo(photo, fitted.x)
    x = fitted.x.to(device)
    run = check_model_takes(subj, x, trace)  # a size the model rejects, told as --size (the API names the image)
    return subj, photo, fitted, x, run


ICON_SIDE = 32  # a picture whose longer side is under 32 px is an icon: its overlay cannot be read at 100%


def note_small_photo(photo, x) -> None:
    """Say so where the photo [C, H, W] is an icon (under ICON_SIDE) smaller on both sides than the model input
    x [1, C, h, w]: the PNG is drawn at the photo's size, so a 3x3 photo gave a 3x3 picture of a 28x28 map."""
    (h, w), (model_h, model_w) = photo.shape[-2:], x.shape[-2:]
    if h < model_h and w < model_w and max(h, w) < ICON_SIDE:
        print(f"dreamlab: note: the photo is {w}x{h} pixels, smaller than the {model_w}x{model_h} model input, and "
              f"the PNG is drawn at the photo's size; for a readable picture, upscale the photo first",
              file=sys.stderr)


def at_size(subj, photo, x):
    """The model input another --size gives (the longer side rounded as model_input rounds it), for the sizes
    that cam_layer's advice names: resizing `x` itself would round that side differently."""
    from dreamlab.attribution.photos import model_input

    return lambda size: model_input(photo, subj, size).x.to(x.device)


def run(args: argparse.Namespace) -> int:
    from dreamlab.attribution.api import cam_layer, enlarged_map_noted, gradcam, target_layers
    from dreamlab.attribution.cam import CAM_METHODS
    from dreamlab.errors import unknown
    from dreamlab.attribution.overlay import overlay
    from dreamlab.attribution.photos import (attribution_provenance, default_output, predicted_class, save_outputs,
                                             to_photo_size)

    if args.method not in CAM_METHODS:  # before the model loads
        raise unknown("CAM method", args.method, CAM_METHODS)
    subj, photo, fitted, x, run = load_subject(args, trace=True)  # one forward: the top class and the layer read it
    target = args.target or predicted_class(subj, x, run)
    out = args.out or default_output(subj.recipe.name, target, args.method, args.layer)
    if args.out is None:
        check_outputs(out, default=True, photo=args.image)  # before the map is computed
    layer = cam_layer(subj, x, args.layer, target, cli=True, resize=at_size(subj, photo, x), trace=run.trace)
    with enlarged_map_noted():  # cam_layer said it in --size words
        cam = gradcam(subj, x, target, layer, method=args.method)
    if args.layer and target_layers(subj, target) == {layer}:
        note_own_layer(target, layer)
    raw = to_photo_size(cam[0].cpu(), photo, fitted)[0].clamp(min=0)
    top = float(raw.max())
    picture = overlay(photo, raw / top if top > 0 else raw)
    png, npy = save_outputs(picture, raw, out, attribution_provenance(subj, target, args.method, args.weights,
                                                                      {"layer": layer}, args.image, fitted))
    print(f"{png} ({args.method} of {target} at {layer}; raw map in {npy})")
    if top == 0:
        note_zero_map(args.method, target, layer)
        note_zero_head(subj.model, target_layers(subj, target))
    return 0


def note_zero_map(method: str, target: str, layer: str) -> None:
    """One stderr line for an all-zero map, whose picture (the photo greyed, no heat) does not say why."""
    print(f"dreamlab: note: the {method} map of {target} at {layer} is all zero: its gradient-weighted sum of the "
          f"layer's channels is 0 or negative at every position (nothing there raises the target), so the picture "
          f"shows no heat; try another --layer or --target", file=sys.stderr)


def note_own_layer(target: str, layer: str) -> None:
    """One stderr line where --layer is the layer the target reads: the gradient of a channel's mean at its own
    layer is uniform, so the map is that channel itself (clipped at 0), not a gradient-weighted map."""
    print(f"dreamlab: note: --layer {layer} is the layer {target} reads, so the map is the target channel itself "
          f"(its gradient there is uniform); leave out --layer for the last spatial layer before it, or pass an "
          f"earlier --layer", file=sys.stderr)

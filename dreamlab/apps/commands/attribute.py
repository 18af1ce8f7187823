"""`dreamlab attribute MODEL --image PHOTO --method M`: per-pixel attributions as a heat map and a signed map."""
from __future__ import annotations

import argparse
import math
import sys

from dreamlab.apps.args import (LIST_ONCE, add_given_option, add_once_option, given_options, nonempty, note_zero_head,
                                positive_int)
from dreamlab.apps.commands.cam import add_subject_arguments, at_size, check_outputs, load_subject, note_zero_map
from dreamlab.errors import DreamlabError

DESCRIPTION = ("Per-pixel attributions of a target: FILE.png shows the heat map over the photo and the signed map "
               "(blue negative, red positive) side by side; FILE.npy holds the signed attributions over the model's "
               "input (the photo with its aspect kept, or padded to a square: dreamlab:photo_region says where the "
               "photo lies in it). --sanity runs the model-randomization test of Adebayo et al. (2018) instead.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_subject_arguments(p)
    add_once_option(p, "--method", "-M", default="saliency", once=LIST_ONCE,
                   help="saliency, input-x-gradient, smoothgrad, ig, deconvnet, guided, guided-gradcam, occlusion "
                        "(default: "
                        "%(default)s); with --sanity, a comma-separated list that may also name gradcam, gradcam++, "
                        "layercam and scorecam")
    # add_given_option: these have defaults, and an option the method does not use must still be told apart
    add_given_option(p, "--baseline", default="black",
                     help="what IG starts from and occlusion shows in its window: black, blurred or noise "
                          "(default: %(default)s)")
    add_given_option(p, "--steps", type=positive_int, default=64,
                     help="IG steps, the nodes of its Gauss-Legendre quadrature, at most 1024 (default: %(default)s)")
    add_given_option(p, "--samples", type=positive_int, default=32,
                     help="SmoothGrad samples, at most 1024 (default: %(default)s)")
    add_given_option(p, "--noise", type=float, default=0.15,
                     help="SmoothGrad noise, a fraction of the image's value range, 0 to 1 (of [0, 1] for a "
                          "constant image; default: %(default)s)")
    add_given_option(p, "--batch-size", type=positive_int, default=32,
                     help="images per forward pass for IG steps, SmoothGrad samples and occluded copies (default: "
                          "%(default)s)")
    p.add_argument("--window", type=positive_int, metavar="PX",
                   help="occlusion's square, in pixels of the model input (default: an eighth of its shorter side)")
    p.add_argument("--stride", type=positive_int, metavar="PX",
                   help="pixels between occlusion windows (default: half the window)")
    p.add_argument("--layer", "-l", type=nonempty,
                   help="the CAM layer of guided-gradcam (and of the CAM methods with --sanity; "
                        "default: the recipe's cam_layer)")
    add_given_option(p, "--seed", type=int, default=0,
                     help="seed of SmoothGrad's and the noise baseline's noise (default: %(default)s)")
    p.add_argument("--sanity", action="store_true",
                   help="re-initialize the model's blocks top-down (one row per block that runs; containers such "
                        "as VGG's features give one row per layer) and print the rank correlation with the "
                        "trained model's map at each step (low = the method depends on the weights)")


def run(args: argparse.Namespace) -> int:
    from dreamlab.attribution.api import attribute, cam_layer, enlarged_map_noted, target_layers
    from dreamlab.attribution.photos import default_output, predicted_class

    methods = _checked_methods(args)
    refuse_unused_options(args, methods)
    subj, photo, fitted, x, run = load_subject(args, writes=not args.sanity)
    target = args.target or predicted_class(subj, x, run)
    options = dict(baseline=args.baseline, steps=args.steps, samples=args.samples, noise=args.noise,
                   layer=args.layer, batch_size=args.batch_size, seed=args.seed)
    if "occlusion" in methods:  # the sizes it uses, for the provenance
        from dreamlab.attribution.gradients import occlusion_window

        options["window"], options["stride"] = occlusion_window(x, args.window, args.stride)
    if args.sanity:
        return _sanity(subj, x, target, methods, options, at_size(subj, photo, x))
    method = methods[0]
    out = args.out or default_output(subj.recipe.name, target, method, args.layer)
    if args.out is None:
        check_outputs(out, default=True, photo=args.image)  # before the attributions are computed
    if method == "guided-gradcam":  # the layer it uses, for the provenance
        options["layer"] = cam_layer(subj, x, args.layer, target, cli=True, resize=at_size(subj, photo, x))
    used = options_used(method, options)
    with enlarged_map_noted():  # cam_layer said it in --size words
        result = attribute(subj, x, target, method, **used)[0].cpu()
    extra, notes = _method_notes(args, subj, x, target, method, result, options)
    _save_maps(args, subj, photo, fitted, result, out, target, method, used, extra)
    for note in notes:
        print(f"dreamlab: note: {note}", file=sys.stderr)
    if not bool(result.any()):
        _note_all_zero(subj, x, target, method, used)
        note_zero_head(subj.model, target_layers(subj, target))
    return 0


def _checked_methods(args: argparse.Namespace) -> list[str]:
    """The methods --method names (several with --sanity), refused before the model loads where one is unknown
    or where the options do not fit --sanity."""
    from dreamlab.attribution.api import METHODS
    from dreamlab.attribution.cam import CAM_METHODS
    from dreamlab.errors import unknown

    valid = METHODS + CAM_METHODS if args.sanity else METHODS
    if args.sanity and args.out is not None:
        raise DreamlabError("--sanity prints a table and writes no file: leave out -o")
    if not args.sanity and "," in args.method:
        raise DreamlabError(f"--method {args.method!r} names several methods, and without --sanity attribute writes "
                            f"one map: give one of {', '.join(METHODS)}, or add --sanity to compare methods in a "
                            f"table")
    methods = method_list(args.method, valid) if args.sanity else [args.method]
    for method in methods:  # before the model loads
        if method not in valid:
            hint = (f"for Grad-CAM run `dreamlab cam --method {method}` (attribute takes it with --sanity only)"
                    if method in CAM_METHODS else "")
            raise unknown("attribution method", method, valid, hint=hint)
    return methods


def _method_notes(args: argparse.Namespace, subj, x, target: str, method: str, result,
                  options: dict) -> tuple[dict, list[str]]:
    """(what the method adds to the PNG's provenance, the notes it prints): IG's completeness, SmoothGrad on a
    constant image, a guided/deconvnet rule that left some activations alone."""
    extra, notes = {}, []
    if method == "ig":
        extra, notes = _ig_completeness(subj, x, target, result, options)
    elif method == "smoothgrad" and float(x.max() - x.min()) == 0 and args.noise > 0:
        notes.append(f"the image is constant (its value range is 0), so SmoothGrad's noise is {args.noise:g} of the "
                     f"input range [0, 1] rather than of the image's range")
    elif method in ("guided", "deconvnet", "guided-gradcam"):
        notes += _partial_rule_note(subj, x, target, method)
    return extra, notes


def _save_maps(args: argparse.Namespace, subj, photo, fitted, result, out, target: str, method: str, used: dict,
               extra: dict) -> None:
    """Write the heat map and the signed map side by side (PNG) and the attributions (.npy), and say where."""
    import torch

    from dreamlab.attribution.overlay import heat, overlay, signed_map
    from dreamlab.attribution.photos import attribution_provenance, save_outputs, to_photo_size
    from dreamlab.io import grid

    signed = method in ("ig", "input-x-gradient", "occlusion")
    panels = torch.stack([overlay(photo, to_photo_size(heat(fitted.crop(result), signed)[None], photo)[0].clamp(0, 1)),
                          to_photo_size(signed_map(fitted.crop(result)), photo).clamp(0, 1)])
    png, npy = save_outputs(grid(panels, columns=2, padding=2, fill=1.0), result, out,
                            attribution_provenance(subj, target, method, args.weights, used, args.image, fitted,
                                                   extra))
    print(f"{png} ({method} of {target}: heat map | signed map; attributions in {npy})")


def _note_all_zero(subj, x, target: str, method: str, used: dict) -> None:
    """Say why the picture of an all-zero attribution shows no heat: Grad-CAM's map was zero, or the method's."""
    from dreamlab.attribution.api import enlarged_map_noted, gradcam

    with enlarged_map_noted():
        zero_cam = method == "guided-gradcam" and not bool(gradcam(subj, x, target, used["layer"]).any())
    if zero_cam:
        note_zero_map("Grad-CAM", target, used["layer"])
    else:
        print(f"dreamlab: note: the {method} attributions of {target} are all zero, so the picture shows no "
              f"heat; try another --target or --method", file=sys.stderr)


def method_list(text: str, valid: tuple[str, ...]) -> list[str]:
    """--sanity's comma-separated --method: each item a method (spaces around it allowed), named once; an empty
    item (`saliency,,ig`, a trailing comma) or a repeat, which would print its column twice, is refused."""
    methods = [m.strip() for m in text.split(",")]
    if not any(methods):
        raise DreamlabError(f"--method {text!r} names no method; valid: {', '.join(valid)}")
    if not all(methods):
        raise DreamlabError(f"--method {text!r} has an empty item (two commas in a row, or one at an end); give "
                            f"the methods separated by single commas, e.g. {','.join(m for m in methods if m)}")
    repeated = [m for i, m in enumerate(methods) if m in methods[:i]]
    if repeated:
        raise DreamlabError(f"--method {text!r} names {repeated[0]} twice; name each method once, e.g. "
                            f"{','.join(dict.fromkeys(methods))}")
    return methods


def _ig_completeness(subj, x, target: str, result, options: dict) -> tuple[dict, list[str]]:
    """IG's quadrature and completeness gap (sum of the attributions minus (f(x) - f(baseline))), for the PNG's
    provenance and a note."""
    from dreamlab.attribution.api import ig_completeness

    gap, difference = (float(v) for v in ig_completeness(subj, x[0], target, result, options["baseline"],
                                                          options["seed"]))
    total = gap + difference
    relative = f" ({abs(gap) / abs(difference):.1%} of |f(x) - f(baseline)|)" if difference != 0 else ""
    extra = {"dreamlab:ig_quadrature": f"gauss-legendre, {options['steps']} nodes",
             "dreamlab:ig_completeness_gap": f"{gap:.6g}", "dreamlab:ig_score_difference": f"{difference:.6g}"}
    note = (f"integrated gradients by Gauss-Legendre quadrature, {options['steps']} steps: the attributions sum to "
            f"{total:.6g}, f(x) - f(baseline) = {difference:.6g}, a completeness gap of {gap:.3g}{relative}; more "
            f"--steps shrinks it")
    return extra, [note]


def _partial_rule_note(subj, x, target: str, method: str) -> list[str]:
    """A note where guided backprop / deconvnet ruled some rectifiers and other activations kept their backward
    (MobileNetV3: ReLU and Hardswish); a model with no rectifier at all is refused by the method itself."""
    from dreamlab.attribution.api import rectifier_census
    from dreamlab.attribution.relu_rules import describe

    ruled, others = rectifier_census(subj, x, target)
    if not ruled or not others:
        return []
    name = "deconvnet" if method == "deconvnet" else "guided backprop"
    return [f"{name} ruled the model's {ruled} ReLU/ReLU6 calls; its other activations ({describe(others)}) keep "
            f"their own backward, as the rule is defined for rectifiers only"]


def options_used(method: str, options: dict) -> dict:
    """The options `method` reads (`USED_BY`; --seed only where noise is drawn), for the PNG's provenance and
    the call of `dreamlab.attribute`, which refuses the others."""
    from dreamlab.attribution.inputs import USED_BY, reads_seed

    used = {name: options[name] for name, users in USED_BY.items() if method in users}
    if reads_seed([method], options["baseline"]):
        used["seed"] = options["seed"]
    return used


def refuse_unused_options(args: argparse.Namespace, methods: list[str]) -> None:
    """Before the model loads: refuse an option that none of `methods` reads (`USED_BY`, the table the Python
    API's `attribute` refuses by), which would be silently ignored (--seed seeds SmoothGrad's noise and IG's
    noise baseline), and a --baseline the command line does not take."""
    from dreamlab.attribution.api import METHODS
    from dreamlab.attribution.gradients import BASELINES
    from dreamlab.attribution.inputs import USED_BY, reads_seed
    from dreamlab.errors import unknown

    asked = ",".join(methods)
    for name, users in USED_BY.items():
        if given_options(args, [name]) and not set(users) & set(methods):
            which = list(users) if args.sanity else [u for u in users if u in METHODS]
            raise DreamlabError(f"--{name.replace('_', '-')} applies to --method {_or(which)} only, not "
                                f"{asked}; leave it out")
    if given_options(args, ["seed"]) and not reads_seed(methods, args.baseline):
        raise DreamlabError(f"--seed applies to --method smoothgrad, and ig or occlusion with --baseline noise, "
                            f"only (the others draw no noise), not {asked}; leave it out")
    if args.baseline not in BASELINES:
        raise unknown("baseline", args.baseline, BASELINES,
                      hint="an image as the baseline needs the Python API (dreamlab.attribute(..., baseline=image))")


def _or(names: list[str]) -> str:
    """'a', 'a or b', 'a, b or c'."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _sanity(subj, x, target: str, methods: list[str], options: dict, resize=None) -> int:
    from dreamlab.attribution.api import attribute, cam_layer, enlarged_map_noted, gradcam, sanity_blocks
    from dreamlab.attribution.cam import CAM_METHODS
    from dreamlab.attribution.sanity import cascading_randomization
    from dreamlab.attribution.target import Subject

    def attribution(model, method: str):
        copy = Subject(model, subj.recipe, subj.categories)
        with enlarged_map_noted():  # cam_layer said it in --size words
            if method in CAM_METHODS:
                return gradcam(copy, x, target, options["layer"], method=method)
            return attribute(copy, x, target, method, **options_used(method, options))

    if any(m in CAM_METHODS or m == "guided-gradcam" for m in methods):  # a size too small is told before the table
        options = {**options, "layer": cam_layer(subj, x, options["layer"], target, cli=True, resize=resize)}
    blocks = sanity_blocks(subj, x, target)  # those that run for the target, containers descended into
    print(f"cascading randomization (Adebayo et al. 2018) of {target}: rank correlation of |attribution| with "
          f"the trained model's, blocks re-initialized from the top down")
    table = {}
    for method in methods:
        steps = cascading_randomization(subj.model, lambda model, m=method: attribution(model, m), blocks)
        table[method] = [s.correlation for s in steps]
    labels = [block if i == 0 else f"+{block}" for i, block in enumerate(blocks)]  # '+': this one re-drawn too
    width = max(len(label) for label in labels + ["randomized"])
    columns = {m: max(14, len(m)) for m in methods}  # input-x-gradient is wider than the figures
    print(f"{'randomized':<{width}}  " + "  ".join(f"{m:>{columns[m]}}" for m in methods))
    for i, label in enumerate(labels):
        print(f"{label:<{width}}  " + "  ".join(f"{_cell(table[m][i]):>{columns[m]}}" for m in methods))
    if any(math.isnan(c) for column in table.values() for c in column):
        print("n/a: the trained or the randomized model's map is all zero (for Grad-CAM: its weighted sum of the "
              "layer's channels is 0 or negative everywhere), so there is no rank correlation; it is not a pass")
    return 0


def _cell(correlation: float) -> str:
    return "n/a" if math.isnan(correlation) else f"{correlation:.3f}"

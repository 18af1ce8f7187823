"""`dreamlab gallery MODEL`: every channel of some layers as PNGs, contact sheets and a static page."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dreamlab.apps.args import (EXIT_INTERRUPTED, LIST_ONCE, WEIGHTS_HELP, add_allow_code_argument, add_alpha_arguments,
                                add_compile_argument, add_device_argument, add_diversity_arguments, add_once_option,
                                add_optimization_arguments, check_diversity_options, check_fourier_decay,
                                check_image_size, check_tensorboard, nonempty, output_path, photo_path, positive_int,
                                square_size, warn_never_on)
from dreamlab.errors import DreamlabError
from dreamlab.optvis.units import parse_units

DESCRIPTION = ("Render every channel of LAYERS into OUT: one PNG per unit, contact sheets, manifest.json "
                    "and index.html. Run the same command again to resume; under torchrun the units are shared across ranks.")


def add_arguments(g: argparse.ArgumentParser) -> None:
    g.add_argument("model", type=nonempty, help="recipe name (googlenet, lenet-digits, ...), a recipe .toml, or any "
                                 "torchvision model name")
    add_once_option(g, "--layers", once=LIST_ONCE,
                    help="comma-separated layer names (default: the recipe's default layer); `dreamlab layers MODEL` "
                         "lists them; logit is the model's output, a channel per class")
    g.add_argument("-o", "--out", type=output_path, help="output folder (default: gallery/MODEL); run again to resume: "
                                                                  "finished units are kept")
    g.add_argument("--weights", default="default", type=nonempty, help=WEIGHTS_HELP)
    g.add_argument("--steps", type=positive_int, help="optimization steps (default: the recipe's)")
    g.add_argument("--size", type=square_size,
                   help="image size in pixels, square, 8 to 2048 (default: the recipe's input size)")
    g.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    add_optimization_arguments(g)
    add_device_argument(g, "; cuda:LOCAL_RANK under torchrun")
    g.add_argument("--batch-size", type=positive_int,
                   help="units per render call (default: 64 on cuda, 16 on cpu, divided by --diversity); "
                        "floating-point rounding depends on it, on a CPU too, so a few units can come out slightly "
                        "different with another one: keep one per gallery (gallery/README.md, Determinism)")
    add_once_option(g, "--channels", type=_channels_arg, once=LIST_ONCE,
                    help="only these channels of each layer, e.g. 0-15 or 0-3,8")
    g.add_argument("--overwrite", action="store_true",
                   help="replace the units of LAYERS made with other settings (refused while OUT holds units of "
                        "other layers)")
    add_diversity_arguments(g, layer_option=False, note="; at the unit's layer. The page shows a unit's N images "
                                                        "together")
    add_alpha_arguments(g, "; the page shows the units over a checkerboard, the contact sheets over grey")
    add_compile_argument(g, "pays off over many batches")
    g.add_argument("--precision", default="auto",
                   help="auto, fp32 or bf16 (default: bf16 on cuda, fp32 elsewhere); a gallery holds one precision, "
                        "so resume with the one it was started with")
    g.add_argument("--examples", type=photo_path, metavar="DIR",
                   help="a folder of photos (or one photo, or china / flower: scikit-learn's sample photos): each "
                        "unit's best crops of them (`dreamlab examples`) are shown under its render in the page's "
                        "large view")
    g.add_argument("--examples-top", type=positive_int, metavar="K", help="crops per unit (default: 8)")
    g.add_argument("--tensorboard", type=output_path, metavar="DIR",
                   help="log each unit's objective and gradient norm per step, and images, to a TensorBoard run "
                        "folder (needs: pip install 'dreamlab[tensorboard]')")
    add_allow_code_argument(g)
    g.add_argument("--tensorboard-every", type=positive_int, metavar="N",
                   help="log images every N steps (default: 8 images over each batch's run)")


def _channels_arg(text: str) -> list[int]:
    try:
        return parse_units(text)
    except DreamlabError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _layer_names(text: str, model: str) -> list[str]:
    """--layers as a list of names, refusing an empty one (`--layers ''`, `conv1,,conv2`, a trailing comma)."""
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        where = "is empty" if not any(names) else f"has an empty name at position {names.index('') + 1}"
        raise DreamlabError(f"--layers {text!r} {where}; give comma-separated layer names, e.g. --layers conv1,conv2 "
                            f"(`dreamlab layers {model}` lists them), or leave --layers out for the recipe's "
                            f"default layer")
    return names


def run(args: argparse.Namespace) -> int:
    # imported here, not above, so that `dreamlab gallery --help` does not load torch
    from dreamlab.apps.gallery.build import build_gallery, check_out_folder
    from dreamlab.apps.gallery.folder import GalleryFolder
    from dreamlab.apps.gallery.page import INDEX_NAME, never_on
    from dreamlab.inspect.tensorboard import TensorBoardLog
    from dreamlab.io import safe_name

    layers = _layer_names(args.layers, args.model) if args.layers is not None else None
    out = args.out if args.out is not None else Path("gallery") / safe_name(Path(str(args.model)).stem)
    check_out_folder(out)
    check_image_size("--size", args.size)  # in render's words
    check_tensorboard(args)
    check_diversity_options(args)
    if args.param is not None:  # else the recipe's, known once it is loaded (the plan checks it then)
        check_fourier_decay(args.fourier_decay, args.param)
    if args.examples is None and args.examples_top is not None:
        raise DreamlabError("--examples-top applies to --examples DIR: add it, or leave --examples-top out")
    tensorboard = TensorBoardLog(args.tensorboard, image_every=args.tensorboard_every) \
        if args.tensorboard is not None else None
    try:
        result = build_gallery(args.model, out, layers, weights=args.weights, steps=args.steps, size=args.size,
                               seed=args.seed, device=args.device, batch_size=args.batch_size,
                               channels=args.channels, overwrite=args.overwrite, compile=args.compile or False,
                               tensorboard=tensorboard, diversity=args.diversity or 1,
                               diversity_weight=args.diversity_weight, examples=args.examples,
                               examples_top=args.examples_top or 8, precision=args.precision, param=args.param,
                               optimizer=args.optimizer, lr=args.lr, fourier_decay=args.fourier_decay,
                               transforms=args.transforms, alpha=args.alpha, alpha_weight=args.alpha_weight)
    except KeyboardInterrupt:
        done = len(GalleryFolder(out).read_records())
        saved = f"{done} finished unit{'s are' if done != 1 else ' is'} saved in {out}" if done else \
            f"no unit had finished, so {out} holds none"
        print(f"dreamlab: interrupted; {saved}. Run the same command again to render "
              f"{'the rest' if done else 'them'}.", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if tensorboard is not None:
            tensorboard.close()
    if result.manifest is not None:
        print(out / INDEX_NAME)
        print(summary(out, len(result.manifest["units"]), result.total, result.skipped), file=sys.stderr)
        new = set(result.new_units)  # a rerun does not repeat the note for units it did not render
        warn_never_on([u["unit"] for u in result.manifest["units"] if u["unit"] in new and never_on(u)],
                      "stayed at 0 for every step (the page marks them)")
    return 0


def summary(out: Path, held: int, asked: int, skipped: int) -> str:
    """The closing line: what the gallery holds, and what this run did with the units it asked for."""
    units = lambda n: f"{n} unit{'' if n == 1 else 's'}"  # noqa: E731
    now = f"{asked - skipped} rendered now, {skipped} already done"
    if held == asked:
        return f"{out}: {units(held)} in the gallery ({now})"
    return f"{out}: {units(held)} in the gallery; of the {units(asked)} this run asked for, {now}"

"""The `dreamlab` command line: render, layers, recipes (and the subcommands of later modules).

Every user error prints one line, `dreamlab: error: ...`, and exits with status 2; Ctrl-C exits with 130
after saving what was computed.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import DreamlabError

EXIT_USAGE, EXIT_INTERRUPTED = 2, 130


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated step counts like 64,256,512, got {text!r}")
    return values


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def add_model_arguments(p: argparse.ArgumentParser, default_model: str | None = "googlenet") -> None:
    """--model/--weights/--recipe, shared by every subcommand that loads a model."""
    p.add_argument("--model", "-m", default=default_model,
                   help="recipe name (googlenet, resnet50, vgg16, lenet-digits) or any torchvision model name "
                        "(default: %(default)s)")
    p.add_argument("--weights", default="default",
                   help="'default' (the recipe's, downloaded by torchvision on first use), 'none' (random init), "
                        "a torchvision weights name, or PATH to a state-dict file")
    p.add_argument("--recipe", type=Path, help="a recipe TOML file to use instead of the model's shipped recipe")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dreamlab", description="Feature visualization for PyTorch models.")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"dreamlab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    r = sub.add_parser("render", help="optimize images that maximize a unit, channel, logit or layer")
    r.add_argument("objective", help="e.g. inception4c:97, inception4c:97@7,7, inception4c, logit:tabby, "
                                     "inception4c:0-63, 'inception4c:97 - 0.5*inception4d:12'")
    add_model_arguments(r)
    r.add_argument("-o", "--out", type=Path, help="output PNG (one unit or --grid) or folder (several units); "
                                                  "default: descriptive names in the current directory")
    r.add_argument("--grid", action="store_true", help="save all units as one grid image")
    r.add_argument("--steps", type=_positive_int, help="optimization steps (default: the recipe's)")
    r.add_argument("--size", type=_positive_int, help="image size in pixels (default: the recipe's input size)")
    r.add_argument("--lr", type=float, help="learning rate (default: the recipe's)")
    r.add_argument("--optimizer", help="channel-adam or adam (default: the recipe's; see dreamlab/optim.py)")
    r.add_argument("--fourier-decay", type=float, metavar="D",
                   help="the Fourier spectrum's 1/f^D scale (default: the recipe's, 0.5; lucid: --optimizer adam "
                        "--fourier-decay 1)")
    r.add_argument("--param", help="image parameterization: pixel or fourier (default: the recipe's)")
    r.add_argument("--transforms", help="transform preset: standard, small, jitter, none (default: the recipe's)")
    r.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    r.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    r.add_argument("--batch-size", type=_positive_int, help="units optimized at once (default: all)")
    r.add_argument("--thresholds", type=_int_list, default=[], help="also save snapshots at these steps, "
                                                                    "e.g. 64,256,512")
    r.add_argument("--init", type=Path, help="start from this image instead of noise")
    r.add_argument("--precision", default="auto", help="auto, fp32 or bf16 (default: bf16 on cuda)")
    r.add_argument("--compile", nargs="?", const="default", metavar="MODE",
                   help="torch.compile each step's forward (warm-up once per process; pays off over long or "
                        "repeated renders); MODE: default, reduce-overhead (CUDA graphs), max-autotune")
    r.set_defaults(run=cmd_render)

    lay = sub.add_parser("layers", help="list addressable layers with output shapes and parameter counts")
    lay.add_argument("model", help="recipe or torchvision model name")
    lay.add_argument("--size", type=_positive_int, help="input size (default: the recipe's)")
    lay.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    lay.add_argument("--recipe", type=Path, help="a recipe TOML file")
    lay.set_defaults(run=cmd_layers)

    rec = sub.add_parser("recipes", help="list the shipped recipes")
    rec.set_defaults(run=cmd_recipes)

    for register in _extension_commands():
        register(sub)
    return parser


def _extension_commands():
    """Subcommands defined beside their features (gallery, quality, bench), when present."""
    from importlib import import_module

    found = []
    for module in ("dreamlab.gallery", "dreamlab.quality", "dreamlab.bench"):
        try:
            found.append(import_module(module).register_cli)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
    return found


def cmd_render(args: argparse.Namespace) -> int:
    from .io import grid, load_image, output_paths, save_png
    from .models import load_model
    from .engine import render

    loaded = load_model(args.recipe or args.model, args.weights)
    if args.fourier_decay is not None and (args.param or loaded.recipe.param) != "fourier":
        raise DreamlabError("--fourier-decay applies to the Fourier parameterization only; add --param fourier "
                            "or leave it out")
    if args.fourier_decay is not None and args.fourier_decay < 0:
        raise DreamlabError(f"--fourier-decay must be 0 or more (0: no preference, 1: lucid's 1/f), got "
                            f"{args.fourier_decay:g}")
    init = load_image(args.init) if args.init else None
    model_name = loaded.recipe.name

    def save_snapshot(step: int, images, labels) -> None:
        if args.grid:
            paths = [_grid_path(args.out, model_name, labels)]
            images = grid(images)[None]
        else:
            paths = output_paths(model_name, labels, args.out)
        for path, image in zip(paths, images):
            save_png(image, path.with_name(f"{path.stem}_step{step:04d}.png"), {"dreamlab:step": str(step)})

    result = render(loaded, args.objective, steps=args.steps, size=args.size, lr=args.lr,
                    optimizer=args.optimizer, param=args.param, transforms=args.transforms, seed=args.seed,
                    device=args.device, batch_size=args.batch_size,
                    thresholds=args.thresholds, on_snapshot=save_snapshot if args.thresholds else None,
                    init_image=init, precision=args.precision, progress=True, compile=args.compile or False,
                    param_options=None if args.fourier_decay is None else {"decay_power": args.fourier_decay})
    written = []
    if args.grid:
        path = _grid_path(args.out, model_name, result.labels)
        save_png(grid(result.images), path, {**result.provenance, "dreamlab:units": " | ".join(result.labels)})
        written.append(path)
    else:
        for path, image, label, score in zip(output_paths(model_name, result.labels, args.out), result.images,
                                             result.labels, result.final_scores.tolist()):
            save_png(image, path, {**result.provenance, "dreamlab:unit": label, "dreamlab:score": f"{score:.6g}"})
            written.append(path)
    for path in written[:10]:
        print(path)
    if len(written) > 10:
        print(f"... and {len(written) - 10} more in {written[-1].parent}")
    if result.interrupted:
        print(f"dreamlab: interrupted after {result.history.shape[0]} steps; saved the images as they were",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def _grid_path(out: Path | None, model: str, labels: Sequence[str]) -> Path:
    from .io import safe_name

    if out is not None and out.suffix.lower() == ".png":
        return out
    span = labels[0] if len(labels) == 1 else f"{labels[0]}..{labels[-1].split(':')[-1]}"
    name = f"{safe_name(model)}_{safe_name(span)}_grid.png"
    return (out / name) if out is not None else Path(name)


def cmd_layers(args: argparse.Namespace) -> int:
    from .models import load_model
    from .summary import format_table, layer_table

    loaded = load_model(args.recipe or args.model, weights="none")  # shapes need no weights
    rows = layer_table(loaded.model, input_size=args.size or loaded.recipe.input_size,
                       channels=loaded.recipe.channels)
    if args.json:
        print(json.dumps([r.as_dict() for r in rows], indent=1))
    else:
        print(format_table(rows))
    return 0


def cmd_recipes(args: argparse.Namespace) -> int:
    from .recipe import load_recipe, shipped_recipe_names

    for name in shipped_recipe_names():
        r = load_recipe(name)
        print(f"{r.name:14} {r.builder:40} {r.input_size:4d}px  default layer: {r.default_layer}")
    print("any torchvision classification model also works by name, e.g. --model convnext_tiny")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except DreamlabError as exc:
        print(f"dreamlab: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("dreamlab: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:  # files that cannot be written or read
        print(f"dreamlab: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 1

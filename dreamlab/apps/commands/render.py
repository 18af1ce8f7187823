"""`dreamlab render OBJECTIVE`: optimize images for a unit, channel, logit or layer and save them as PNGs."""
from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from dreamlab.apps.args import (EXIT_FAILURE, EXIT_INTERRUPTED, LIST_ONCE, REPLACED, add_alpha_arguments,
                                add_compile_argument,
                                add_device_argument, add_diversity_arguments, add_model_arguments, add_once_option,
                                add_optimization_arguments, check_diversity_options, check_fourier_decay,
                                check_image_size, check_tensorboard, image_size, input_path, int_list, model_recipe,
                                note_zero_head, output_path, photo_path, positive_int, warn_never_on)
from dreamlab.errors import DreamlabError

if TYPE_CHECKING:
    from torch import Tensor

    from dreamlab.models.loading import LoadedModel
    from dreamlab.models.recipe import Recipe
    from dreamlab.optvis.result import RenderResult
    from dreamlab.optvis.objectives import Objective


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("objective", help="e.g. inception4c:97, inception4c:97@7,7, inception4c, logit:tabby, "
                                     "inception4c:0-63, 'inception4c:97 - 0.5*inception4d:12'")
    add_model_arguments(p)
    p.add_argument("-o", "--out", type=output_path, help="output PNG (one unit or --grid) or folder (several units; "
                                                  "a NAME.png gives NAME_UNIT.png each); default: descriptive "
                                                  "names in the current directory" + REPLACED)
    p.add_argument("--grid", action="store_true", help="save all units as one grid image")
    p.add_argument("--steps", type=positive_int, help="optimization steps (default: the recipe's)")
    p.add_argument("--size", type=image_size, help="image size in pixels, N or HEIGHTxWIDTH such as 96x128, 8 to "
                                                   "2048 a side (default: the recipe's input size)")
    p.add_argument("--model-size", type=image_size, metavar="N",
                   help="resize what the model sees to N or HEIGHTxWIDTH pixels (8 to 2048 a side) after the "
                        "transforms (lucent's fixed_image_size), so a fixed-size model renders at any --size "
                        "(default: no resize)")
    add_optimization_arguments(p)
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    add_device_argument(p)
    p.add_argument("--batch-size", type=positive_int,
                   help="images optimized at once (default: all; with --diversity N, a multiple of N: rounded down)")
    add_once_option(p, "--thresholds", type=int_list, default=[], once=LIST_ONCE,
                    help="also save snapshots at these steps, e.g. 64,256,512")
    p.add_argument("--init", type=photo_path, metavar="PHOTO",
                   help="start from this image (a PNG/JPEG file, or china or flower) instead of noise")
    add_diversity_arguments(p, note="; a --grid has a row per unit")
    add_alpha_arguments(p)
    p.add_argument("--direction", type=input_path, metavar="FILE",
                   help="render directions in the channel space of the layer given as OBJECTIVE: a vector [C] or a "
                        "matrix [N, C] of N directions in a .npy, .pt (torch.save), .txt or .csv file")
    p.add_argument("--cossim-power", type=float, metavar="P",
                   help="with --direction: weight each position's dot product by its cosine similarity to the "
                        "direction to the power P, 0 to 32 (default 0: the plain dot product; lucid uses 1 or more)")
    p.add_argument("--cosine", action="store_true",
                   help="with --direction: score each position by its cosine similarity to the direction alone, "
                        "-1 to 1 (lucent's direction), instead of the dot product")
    p.add_argument("--precision", default="auto", help="auto, fp32 or bf16 (default: bf16 on cuda, fp32 elsewhere)")
    add_compile_argument(p, "pays off over long or repeated renders")
    p.add_argument("--tensorboard", type=output_path, metavar="DIR",
                   help="log the objective and gradient norm of each unit per step, and images, to a TensorBoard "
                        "run folder (needs: pip install 'dreamlab[tensorboard]')")
    p.add_argument("--tensorboard-every", type=positive_int, metavar="N",
                   help="log images every N steps (default: 8 images over the run)")


def run(args: argparse.Namespace) -> int:
    """`dreamlab render`: the exit status."""
    from dreamlab.optvis.classes import class_layers_remembered

    with class_layers_remembered():  # the file names and render() need the class layer: one forward finds it
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from dreamlab.inspect.tensorboard import TensorBoardLog, fresh_run, with_snapshots
    from dreamlab.io import photo_record
    from dreamlab.models.loading import load_model, module_names
    from dreamlab.optvis.grammar import parse_objective
    from dreamlab.optvis.engine import render
    from dreamlab.optvis.progress import DeferredSigint

    along, init = _check_before_loading(args)
    loaded = load_model(model_recipe(args), args.weights)
    objective = along if along is not None else parse_objective(args.objective, loaded.categories,
                                                                module_names(loaded.model))
    recipe = loaded.recipe.for_layers(objective.layers)  # with the recipe's settings for the layers it reads
    check_fourier_decay(args.fourier_decay, args.param or recipe.param)
    _check_alpha(args, args.param or recipe.param, "" if args.param else " (the recipe's)")
    copies = args.diversity or 1
    units, paths, grid_path = _output_paths(args, loaded, objective, recipe, copies)
    snapshots = _SnapshotSaver(args.grid, paths, objective.name, loaded.recipe.name)
    log = None if args.tensorboard is None else TensorBoardLog(args.tensorboard, purge_step=fresh_run(args.tensorboard))
    thresholds, on_snapshot = with_snapshots(log, args.steps or recipe.steps, args.thresholds,
                                             snapshots if args.thresholds else None, args.tensorboard_every)
    result = render(loaded, objective, steps=args.steps, size=args.size, model_size=args.model_size, lr=args.lr,
                    optimizer=args.optimizer, param=args.param, transforms=args.transforms, seed=args.seed,
                    device=args.device, batch_size=args.batch_size, thresholds=thresholds, on_snapshot=on_snapshot,
                    keep_snapshots=False, init_image=init, precision=args.precision, progress=True,
                    compile=args.compile or False,
                    fourier_decay=args.fourier_decay, diversity=copies, alpha=args.alpha,
                    alpha_weight=args.alpha_weight,
                    diversity_layer=args.diversity_layer,
                    **({} if args.diversity_weight is None else {"diversity_weight": args.diversity_weight}))
    if init is not None:  # the photo by its name and file (render() was given its pixels)
        result.provenance.update(photo_record(args.init, init, "init"))
    with DeferredSigint() as saving:  # a Ctrl-C now would lose images: it waits until they are written
        if log is not None:
            log.write_result(result)
            log.close()
        written, kept_aside = _save(args, result, paths, grid_path, snapshots.grid_images, snapshots.written)
    status = _report(result, written, kept_aside, len(units) // copies, copies, saving.hit)
    if result.never_on():
        note_zero_head(loaded.model, objective.layers)
    return status


def _check_before_loading(args: argparse.Namespace) -> tuple[Objective | None, Tensor | None]:
    """Refuse a bad option before the model loads (tens of seconds on a CPU); return the --direction objective
    and the --init photo's pixels (None without them), both read here."""
    from dreamlab.devices import resolve_device
    from dreamlab.io import read_photo
    from dreamlab.optvis.grammar import check_syntax
    from dreamlab.optvis.settings import check_lr

    _check_out(args.out, args.init)  # before any work
    check_image_size("--size", args.size)  # before the model loads
    check_image_size("--model-size", args.model_size)
    if args.lr is not None:
        check_lr(args.lr)
    check_tensorboard(args)
    check_diversity_options(args)
    _check_alpha(args, args.param)
    along = _direction_objective(args)  # a bad file is refused before the model loads (tens of seconds on a CPU)
    if along is None:
        check_syntax(args.objective)  # so is a typo
    resolve_device(args.device)  # a bad --device is refused before the model loads
    init = read_photo(args.init, "--init image") if args.init else None  # so is an unreadable photo
    return along, init


def _check_alpha(args: argparse.Namespace, param: str | None, whose: str = "") -> None:
    """--alpha-weight without --alpha, out of range, or --alpha with a parameterization that has no alpha channel
    (`param`: None before the recipe is known), in the command line's words."""
    from dreamlab.optvis.settings import SPREAD_PARAMS, check_alpha

    if args.alpha_weight is not None and not args.alpha:
        raise DreamlabError("--alpha-weight weighs the transparency penalty of --alpha; add --alpha, or leave "
                            "--alpha-weight out")
    if args.alpha and param is not None and param not in SPREAD_PARAMS:
        raise DreamlabError(f"--alpha needs the alpha channel that the {' and '.join(SPREAD_PARAMS)} "
                            f"parameterizations add, and --param is {param}{whose}: add --param "
                            f"{' or --param '.join(SPREAD_PARAMS)}, or leave --alpha out")
    try:
        check_alpha(args.alpha, args.alpha_weight)
    except DreamlabError as exc:
        raise DreamlabError(str(exc).replace("alpha_weight", "--alpha-weight")) from None


def _output_paths(args: argparse.Namespace, loaded: LoadedModel, objective: Objective, recipe: Recipe,
                  copies: int) -> tuple[list[str], dict[str, Path], Path]:
    """The render's labels (each unit's `copies` images), the PNG of each, and the --grid PNG; a path that is a
    folder is refused before the render."""
    from dreamlab.io import output_paths
    from dreamlab.optvis.diversity import repeat_units
    from dreamlab.optvis.classes import class_layer_of

    model_name = loaded.recipe.name
    units = repeat_units(objective, copies).labels if copies > 1 else objective.labels  # the render's labels
    side = args.model_size or args.size or recipe.input_size
    class_layer = class_layer_of(loaded.model, objective.layers, loaded.categories, recipe.channels,
                                 side if isinstance(side, tuple) else (side, side), "cpu")  # googlenet's fc
    named = [_with_class(label, loaded.categories, class_layer) for label in units]  # logit_281_tabby.png
    paths = dict(zip(units, output_paths(model_name, named, args.out)))  # a PNG of its own per unit
    grid_path = _grid_path(args.out, model_name, units, loaded.categories, class_layer)
    _check_paths([grid_path] if args.grid else list(paths.values()), args.thresholds)  # before the render
    return units, paths, grid_path


class _SnapshotSaver:
    """render's `on_snapshot` for --thresholds: a unit's snapshot is written at once, so that a crash keeps it
    (the render's full provenance is added once it ends, by _save); a grid's waits in `grid_images` for the
    images of every batch."""

    def __init__(self, grid: bool, paths: dict[str, Path], objective_name: str, model_name: str):
        self.grid, self.paths, self.objective_name, self.model_name = grid, paths, objective_name, model_name
        self.grid_images: dict[int, list] = {}  # step -> each batch's images: a grid needs the units of every batch
        self.written: dict[Path, tuple[str, int]] = {}  # written during the render: path -> unit, step

    def __call__(self, step: int, images, labels) -> None:
        from dreamlab.io import save_png

        if self.grid:
            self.grid_images.setdefault(step, []).append(images)
            return
        for label, image in zip(labels, images):
            path = _snapshot_path(self.paths[label], step)
            save_png(image, path, {"dreamlab:objective": self.objective_name, "dreamlab:model": self.model_name,
                                   "dreamlab:unit": label, "dreamlab:step": str(step)})
            self.written[path] = label, step


def _report(result: RenderResult, written: list[Path], kept_aside: list[tuple[Path, Path, str]], units: int,
            copies: int, saving_hit: bool) -> int:
    """Print what was saved, and on stderr what went wrong (a file that could not be replaced, units that stayed
    at 0, a Ctrl-C); return the exit status."""
    for path in written[:10]:
        print(path)
    if len(written) > 10:
        print(f"... and {len(written) - 10} more in {written[-1].parent}")
    if kept_aside:
        (first, aside, why), more = kept_aside[0], len(kept_aside) - 1
        others = f" (and {more} more, each beside its name)" if more else ""
        print(f"dreamlab: error: cannot replace {str(first)!r} ({why}); its image was saved as {str(aside)!r}"
              f"{others}: lift the file's protection, or give -o another path", file=sys.stderr)
        return EXIT_FAILURE
    ran = f"all {len(result.history)}" if len(set(result.steps)) == 1 else f"the {len(result.history)} that all ran"
    warn_never_on(result.never_on(), f"stayed at 0 for {ran} steps")
    if result.interrupted or saving_hit:
        print(_interrupted_line(result, units, copies, saving_hit), file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def _save(args: argparse.Namespace, result: RenderResult, paths: dict[str, Path], grid_path: Path,
          grid_snapshots: dict[int, list], snapshots: dict[Path, tuple[str, int]]
          ) -> tuple[list[Path], list[tuple[Path, Path, str]]]:
    """Write the render's PNGs (and its provenance into the snapshots written during it): the paths written, the
    final images first, then the --thresholds snapshots; and (path, where its image went instead, why) for each
    existing file that could not be replaced (chattr +i), so that no rendered image is lost."""
    from dreamlab.apps.args import phase

    provenance = _file_provenance(args, result)
    kept_aside: list[tuple[Path, Path, str]] = []
    count = len(result.labels)
    phase(f"saving one grid of {count} image(s)" if args.grid else f"saving {count} image(s)")
    if args.grid:
        written = _save_grid(args, result, provenance, grid_path, grid_snapshots, kept_aside)
    else:
        written = [_keep(image, paths[label], {**provenance, **result.unit_text(i)}, kept_aside)
                   for i, (image, label) in enumerate(zip(result.images, result.labels))]
    return written + _label_snapshots(result, provenance, snapshots), kept_aside


def _file_provenance(args: argparse.Namespace, result: RenderResult) -> dict[str, str]:
    """The render's provenance, with the --direction file's name and digest where one was given."""
    from dreamlab.io import file_digest

    provenance = dict(result.provenance)
    if args.direction is not None:  # the name comes from the file's stem: record which file, and its content
        provenance["dreamlab:direction_file"] = str(args.direction)
        provenance["dreamlab:direction_sha256"] = file_digest(args.direction)
    return provenance


def _keep(image: Tensor, path: Path, text: dict[str, str], kept_aside: list[tuple[Path, Path, str]]) -> Path:
    """Save the PNG at `path`, or beside it where an existing file there is locked (noted in `kept_aside`)."""
    from dreamlab.io import save_png

    try:
        return save_png(image, path, text)
    except PermissionError as exc:  # the folder takes files (checked before the render); this one is locked
        if not path.exists():
            raise
        aside = save_png(image, _free_name(path), text)
        kept_aside.append((path, aside, exc.strerror or str(exc)))
        return aside


def _save_grid(args: argparse.Namespace, result: RenderResult, provenance: dict[str, str], grid_path: Path,
               grid_snapshots: dict[int, list], kept_aside: list[tuple[Path, Path, str]]) -> list[Path]:
    """Write the --grid PNG, then a grid per --thresholds step that every batch reached: the paths written."""
    import torch

    from dreamlab.io import grid, save_png

    copies = args.diversity or 1
    columns = copies if copies > 1 else None  # a row per unit
    written = [_keep(grid(result.images, columns), grid_path, {**provenance, **result.grid_text()}, kept_aside)]
    for step, parts in sorted(grid_snapshots.items()):
        images = torch.cat(parts)
        if len(images) == len(result.labels):  # every batch reached this step
            written.append(save_png(grid(images, columns), _snapshot_path(grid_path, step),
                                    {**provenance, **result.snapshot_text(None, step)}))
    return written


def _label_snapshots(result: RenderResult, provenance: dict[str, str],
                     snapshots: dict[Path, tuple[str, int]]) -> list[Path]:
    """Write the provenance into the unit snapshots saved during the render: the paths of those kept."""
    from dreamlab.io import set_png_text

    written: list[Path] = []
    index_of = {label: i for i, label in enumerate(result.labels)}
    for path, (label, step) in snapshots.items():  # after the final images, the more precious ones
        if label in index_of:  # else its unit's batch was cut off before it finished
            set_png_text(path, {**provenance, **result.snapshot_text(index_of[label], step)})
            written.append(path)
    return written


def _free_name(path: Path) -> Path:
    """NAME_new.png beside `path` (NAME_new2.png, ... where that exists too)."""
    for n in range(1, 1000):
        candidate = path.with_name(f"{path.stem}_new{n if n > 1 else ''}{path.suffix}")
        if not candidate.exists():
            return candidate
    raise DreamlabError(f"no free name beside {str(path)!r}; clear out its _new copies")


def _with_class(label: str, categories: Sequence[str] | None, class_layer: str | None = None) -> str:
    """A unit's label with the class name after each class logit's number, for its file name ('logit:281 tabby',
    'logit:281 tabby - logit:282 tiger cat'; also a unit of `class_layer`, the module whose output is the model's:
    'fc:281 tabby'): names that say more than the number (lenet-digits' '3' does not)."""
    from dreamlab.io import ascii_letters
    from dreamlab.optvis.classes import LOGIT_IN_LABEL, logit_class

    def named(m: re.Match) -> str:
        # safe characters only: a '/' or '*' in a class name is no operator ('a_over_b' would say it is)
        found = logit_class(f"logit:{m[1]}", categories) or ""
        name = re.sub(r"[^A-Za-z0-9.+-]+", "_", ascii_letters(found)).strip("._")
        return f"{m[0]} {name}" if name else m[0]

    if class_layer and class_layer != "logit":
        return re.sub(rf"(?<![\w.-])(?:logit|{re.escape(class_layer)}):(\d+)(?![\d-])", named, label)
    return LOGIT_IN_LABEL.sub(named, label)


def _interrupted_line(result: RenderResult, units: int, copies: int, while_saving: bool) -> str:
    """What a Ctrl-C left: how far the images got, and how many units were not rendered."""
    done = len(result.labels) // copies
    cut = [n for n in result.steps if n < result.planned_steps]
    if cut:
        line = f"dreamlab: interrupted after {min(cut)} steps; saved the images as they were"
    elif result.interrupted:
        line = f"dreamlab: interrupted; saved the {done} unit(s) rendered in full"
    else:
        line = "dreamlab: interrupted while saving; saved every image first"
    if done < units:
        line += f"; {units - done} of {units} unit(s) were not rendered"
    if while_saving and result.interrupted:
        line += " (a Ctrl-C while saving waited until they were written)"
    return line


def _direction_objective(args: argparse.Namespace) -> Objective | None:
    """The objective of --direction, its file read and checked (None without it); OBJECTIVE must then be one
    layer (it needs no model: the channel count is checked when the render reads the layer)."""
    from dreamlab.io import load_vectors
    from dreamlab.optvis.objectives import direction

    if args.direction is None:
        for flag, given in (("--cossim-power", args.cossim_power is not None), ("--cosine", args.cosine)):
            if given:
                raise DreamlabError(f"{flag} applies to --direction FILE only; add it, or leave {flag} out")
        return None
    if args.cosine and args.cossim_power is not None:
        raise DreamlabError("--cosine scores the cosine alone and --cossim-power weighs the dot product by it: "
                            "give one of them")
    layer = args.objective.strip()
    if not layer or any(c in layer for c in " :@+*/()") or layer.startswith("-"):
        raise DreamlabError(f"with --direction, OBJECTIVE is the layer the directions live in, like conv2 or "
                            f"logit, got {args.objective!r}: give the layer alone")
    return direction(layer, load_vectors(args.direction), args.cossim_power or 0.0,
                     name=_direction_name(args.direction), cosine=args.cosine)


def _direction_name(path: Path) -> str:
    """The name of a --direction file's directions in labels and file names: its stem, made a safe word
    ('my dirs.npy' -> 'my_dirs'; 'direction' when nothing of it is left)."""
    from dreamlab.io import safe_name

    name = safe_name(path.stem)
    return name if re.search(r"[A-Za-z0-9]", name) else "direction"


# names that mean a file of another type (render -o out.jpg used to make a folder out.jpg/), besides any suffix
# of 1-4 letters (.txt, .json, .html); a folder may have other dots in its name (renders.v2, runs.final)
OTHER_FILE_TYPES = {".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".svg", ".pdf", ".npy", ".pt",
                    ".mp4", ".mp3", ".h5", ".7z", ".pth", ".bz2"}


def _looks_like_a_file(out: Path) -> bool:
    """Whether -o names a file of a type other than PNG (out.jpg, x.txt) rather than a folder."""
    suffix = out.suffix.lower()
    return suffix != ".png" and (suffix in OTHER_FILE_TYPES or re.fullmatch(r"\.[a-z]{1,4}", suffix) is not None)


def _check_out(out: Path | None, init: object = None) -> None:
    """-o is a PNG file or a folder (a name without a file suffix, or one that exists); refused before any work
    when it is neither, cannot be written, or is the --init photo."""
    from dreamlab.io import check_not_an_input, check_writable

    if out is not None and _looks_like_a_file(out) and not out.is_dir():
        raise DreamlabError(f"-o {str(out)!r}: images are saved as PNG; give a name ending in .png, or a folder "
                            f"(a new folder's name without a suffix like {out.suffix!r}, or an existing folder)")
    is_file = out is not None and out.suffix.lower() == ".png"
    check_writable(out if out is not None else Path("."), "output", folder=not is_file)
    if is_file:
        check_not_an_input(out, [init])


def _check_paths(paths: Sequence[Path], thresholds: Sequence[int]) -> None:
    """Refuse, before the render, an output PNG (or a --thresholds snapshot of one) whose name is a folder."""
    for path in paths:
        for name in (path, *(_snapshot_path(path, step) for step in thresholds)):
            if name.is_dir():
                raise DreamlabError(f"output {str(name)!r} is a folder, so the image cannot be saved there; "
                                    f"remove or rename that folder, or give -o another name")


def _grid_path(out: Path | None, model: str, labels: Sequence[str], categories: Sequence[str] | None = None,
               class_layer: str | None = None) -> Path:
    from dreamlab.io import label_name, safe_name
    from dreamlab.optvis.diversity import unit_label

    if out is not None and out.suffix.lower() == ".png":
        return out
    labels = list(dict.fromkeys(unit_label(label) for label in labels))  # a unit's --diversity images: once
    # one unit (its --diversity images): its class name too, as its own file would have it
    span = _with_class(labels[0], categories, class_layer) if len(labels) == 1 else \
        f"{labels[0]}..{labels[-1].split(':')[-1]}"
    name = f"{safe_name(model)}_{label_name(span)}_grid.png"
    return (out / name) if out is not None else Path(name)


def _snapshot_path(path: Path, step: int) -> Path:
    """Where the snapshot at `step` of the PNG `path` goes: NAME_step0064.png beside it."""
    return path.with_name(f"{path.stem}_step{step:04d}.png")

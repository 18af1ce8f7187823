"""`dreamlab dream PHOTO`: DeepDream on a photo at its own size; `--zoom-frames N` makes the endless zoom."""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from dreamlab.apps.args import (EXIT_INTERRUPTED, REPLACED, add_device_argument, add_model_arguments, check_tensorboard,
                                given_options, model_recipe, output_path, photo_path, positive_int)
from dreamlab.errors import DreamlabError
from dreamlab.optvis.dream_settings import LR, LR_MAX, ROTATE_DEFAULT, ROTATE_RANGE, ZOOM_DEFAULT, ZOOM_RANGE

if TYPE_CHECKING:
    from PIL.Image import Image

    from dreamlab.optvis.dream import DreamTiling

DESCRIPTION = ("DeepDream on a photo: gradient ascent on a layer (default: the recipe's default layer, the L2 of "
               "its activations) at several scales, the photo at its own size (tiled when larger than --tile). "
               "--guide IMAGE dreams towards that image's features; --zoom-frames N writes the endless zoom as "
               "an animation (.webp, .gif, or .mp4 with the video extra), resumable from its frames folder.")
ANIMATIONS = (".webp", ".gif", ".mp4")
# the zoom's options, which need --zoom-frames: dream()'s defaults, and the animation's frame rate
ZOOM_DEFAULTS = {"zoom": ZOOM_DEFAULT, "rotate": ROTATE_DEFAULT, "fps": 12}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("photo", type=photo_path, help="the photo (PNG, JPEG, ...), dreamed at its own size, or china "
                                                  "or flower (scikit-learn's sample photos)")
    add_model_arguments(p)
    p.add_argument("--objective", help="what to amplify: a whole layer (inception4c), a channel (inception4c:97) "
                                       "or any objective (default: the recipe's default layer)")
    p.add_argument("-o", "--out", type=output_path, help="output: .png, or with --zoom-frames .webp, .gif or .mp4 "
                                                  "(default: PHOTO_dream.png / PHOTO_zoom.webp here)" + REPLACED)
    p.add_argument("--octaves", type=positive_int, default=4, help="scales dreamed, smallest first (default: 4)")
    p.add_argument("--octave-scale", type=float, default=1.4, help="size ratio between octaves (default: 1.4)")
    p.add_argument("--steps", type=positive_int, default=10, help="steps per octave (default: 10)")
    p.add_argument("--lr", type=float, default=LR, help=f"mean absolute change per step in [0,1] units, above 0 "
                                                        f"and at most 1 (default: {LR:g}, google/deepdream's)")
    p.add_argument("--jitter", type=int, default=32, help="largest random roll per step, pixels (default: 32)")
    p.add_argument("--guide", type=photo_path, metavar="IMAGE",
                   help="an image (PNG, JPEG, ..., or china or flower) whose features at the layer the photo takes on")
    p.add_argument("--tile", type=_tile, default="auto",
                   help="photos (octaves) with a longer side above this many pixels are dreamed in tiles; lower "
                        "it to use less memory (default: auto: 1024, or more where the objective's context needs "
                        "it)")
    p.add_argument("--overlap", type=int, metavar="PX",
                   help="context each tile takes on every side, in pixels (default: the objective layer's "
                        "receptive field, at least 64; rounded up to 32)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the jitter (default: 0)")
    add_device_argument(p)
    p.add_argument("--zoom-frames", type=positive_int, metavar="N", help="make an endless zoom of N frames")
    p.add_argument("--tensorboard", type=output_path, metavar="DIR",
                   help="log the objective per step and images to a TensorBoard run folder (needs: pip install "
                        "'dreamlab[tensorboard]')")
    p.add_argument("--tensorboard-every", type=positive_int, metavar="N",
                   help="log the image every N steps, and the last (default: --steps, once per octave)")
    p.add_argument("--zoom", type=float,
                   help=f"magnification per frame, {ZOOM_RANGE[0]:g} to {ZOOM_RANGE[1]:g} (default: {ZOOM_DEFAULT:g})")
    p.add_argument("--rotate", type=float, metavar="DEG",
                   help=f"rotation per frame in degrees, {ROTATE_RANGE[0]:g} to {ROTATE_RANGE[1]:g} (default: "
                        f"{ROTATE_DEFAULT:g})")
    p.add_argument("--fps", type=positive_int,
                   help=f"frames per second of the animation, at most 100 for a .gif and 1000 for a .webp "
                        f"(default: {ZOOM_DEFAULTS['fps']})")
    p.add_argument("--frames-dir", type=output_path, help="where the zoom's numbered PNG frames go, and where a stopped "
                                                   "run resumes from (default: OUT's name + _frames)")


def run(args: argparse.Namespace) -> int:
    from dreamlab.io import read_photo
    from dreamlab.models.loading import load_model

    zoom = bool(args.zoom_frames)
    out, frames_dir = _checked_outputs(args, zoom)
    photo = read_photo(args.photo, "photo")
    guide = read_photo(args.guide, "guide") if args.guide else None
    loaded = load_model(model_recipe(args), args.weights)
    files = _photo_files(args, photo, guide)
    tiling = _tiling(args, loaded, photo) if zoom else None
    key, older = _zoom_keys(args, loaded, tiling) if zoom else ("", None)
    done = _frames_done(frames_dir, key, older, args, tiling) if zoom else 0
    board = _board(args, done)
    # a tiled zoom's context was measured for its key: dream() takes it rather than measuring it again
    overlap = tiling.overlap if tiling is not None and tiling.tiled else args.overlap
    options = dict(octaves=args.octaves, octave_scale=args.octave_scale, steps=args.steps, lr=args.lr,
                   jitter=args.jitter, guide=guide, tile=args.tile, overlap=overlap, seed=args.seed,
                   device=args.device, progress=True, on_step=board)
    try:
        if not zoom:
            return _dream_photo(args, loaded, photo, options, files, out)
        interrupted = _dream_zoom(args, loaded, photo, options, files, frames_dir, key, done)
    except DreamlabError:  # out of memory, a gradient gone NaN: the steps logged so far show how it got there
        if board is not None:
            board.finish(None)
        raise
    return _write_zoom(args, out, frames_dir, interrupted)


def _checked_outputs(args: argparse.Namespace, zoom: bool) -> tuple[Path, Path]:
    """Check the options and the output's name and folder before any work: (the output, the zoom's frames
    folder)."""
    from dreamlab.io import check_not_an_input, check_writable

    _zoom_options(args, zoom)
    _check_numbers(args)
    check_tensorboard(args)
    out = args.out or Path(f"{Path(args.photo).stem}_{'zoom.webp' if zoom else 'dream.png'}")
    if zoom and out.suffix.lower() not in ANIMATIONS:
        raise DreamlabError(f"--zoom-frames writes an animation: give -o a name ending in {', '.join(ANIMATIONS)}, "
                            f"got {str(out)!r}")
    if not zoom and out.suffix.lower() != ".png":
        raise DreamlabError(f"a dream is saved as PNG: give -o a name ending in .png (animations need "
                            f"--zoom-frames), got {str(out)!r}")
    if zoom:
        _check_fps(args.fps, out.suffix.lower())
    if out.suffix.lower() == ".mp4":
        _imageio()  # fail before dreaming when the extra is missing
    check_writable(out, "output", folder=False)
    check_not_an_input(out, [args.photo, args.guide])
    frames_dir = args.frames_dir or out.with_name(out.stem + "_frames")
    if zoom:
        check_writable(frames_dir, "--frames-dir folder", folder=True)
    return out, frames_dir


def _photo_files(args: argparse.Namespace, photo, guide) -> dict[str, str]:
    """The provenance records of the photo and the guide files."""
    from dreamlab.io import photo_record

    # dream() is given the pixels (a resumed zoom starts from a frame): the files are named here
    return {**photo_record(args.photo, photo), **(photo_record(args.guide, guide, "guide") if args.guide else {})}


def _board(args: argparse.Namespace, done: int):
    """The --tensorboard log's step callback, or None without one."""
    from dreamlab.inspect.tensorboard import DreamSteps, TensorBoardLog, fresh_run

    if args.tensorboard is None:
        return None
    # a resumed zoom continues the step series of the frames already made; the steps a stopped run logged of the
    # frame it left unfinished are logged again, so TensorBoard is told to hide the old ones (purge_step); a run
    # from frame 0 into a folder with events hides all of theirs
    steps_done = done * args.octaves * args.steps
    log = TensorBoardLog(args.tensorboard, purge_step=steps_done + 1 if done else fresh_run(args.tensorboard))
    return DreamSteps(log, args.tensorboard_every or args.steps, done=steps_done)


def _dream_photo(args: argparse.Namespace, loaded, photo, options: dict, files: dict[str, str], out: Path) -> int:
    """Dream the photo once and save it as PNG: the exit status."""
    from dreamlab.io import save_png
    from dreamlab.optvis.dream import dream
    from dreamlab.optvis.progress import DeferredSigint

    board = options["on_step"]
    result = dream(loaded, photo, args.objective, **options)
    provenance = {**result.provenance, **files}
    with DeferredSigint() as saving:  # a second Ctrl-C now would lose the dream: it waits until the PNG is written
        save_png(result.image, out, {**provenance, "dreamlab:score": f"{result.final_score:.6g}"})
        if board is not None:
            board.finish(provenance)
    print(out)
    if saving.hit and not result.interrupted:
        print("dreamlab: interrupted while saving; saved the dream first", file=sys.stderr)
        return EXIT_INTERRUPTED
    where = result.provenance.get("dreamlab:interrupted", "")
    return _finish(result.interrupted, f"the octaves done so far ({where}; the PNG records it)")


def _dream_zoom(args: argparse.Namespace, loaded, photo, options: dict, files: dict[str, str], frames_dir: Path,
                key: str, done: int) -> bool:
    """Dream the zoom's frames from `done` on into `frames_dir` (each saved as it is finished): whether Ctrl-C
    stopped it."""
    from dreamlab.io import load_image
    from dreamlab.optvis.dream import dream

    board = options["on_step"]
    start_frames, save_frame = _frame_callbacks(frames_dir, key, files)
    interrupted = False
    if done < args.zoom_frames:
        if done:
            print(f"dreamlab: resuming at frame {done} of {args.zoom_frames} from {frames_dir}", file=sys.stderr)
        start = load_image(_frame_path(frames_dir, done - 1)) if done else photo
        result = dream(loaded, start, args.objective, zoom_frames=args.zoom_frames, zoom=args.zoom,
                       rotate=args.rotate, start_frame=done, on_frame=save_frame, on_start=start_frames, **options)
        interrupted = result.interrupted
        if board is not None:
            board.finish({**result.provenance, **files})
    else:
        nothing = "; no step to log to --tensorboard" if args.tensorboard is not None else ""
        one = args.zoom_frames == 1
        held, them = ("the 1 frame is", "it") if one else (f"all {args.zoom_frames} frames are", "them")
        print(f"dreamlab: {held} already in {frames_dir}; writing the animation from {them}{nothing}", file=sys.stderr)
    return interrupted


def _frame_callbacks(frames_dir: Path, key: str, files: dict[str, str]) -> tuple[Callable, Callable]:
    """dream()'s on_start and on_frame for a zoom: keep the provenance it starts with, save each frame with it."""
    from dreamlab.io import save_png

    text: dict[str, str] = {}

    def start_frames(provenance: dict[str, str]) -> None:
        # a frame does not depend on how many follow it, so a longer resumed zoom writes the same bytes
        provenance.pop("dreamlab:zoom_frames", None)
        text.update({**provenance, "dreamlab:mode": "dream-zoom", "dreamlab:zoom_key": key, **files})

    def save_frame(index: int, frame, score: float) -> None:
        scored = {"dreamlab:score": f"{score:.6g}"} if math.isfinite(score) else {}  # none when Ctrl-C stopped it
        save_png(frame, _frame_path(frames_dir, index), {**text, "dreamlab:frame": str(index), **scored})

    return start_frames, save_frame


def _write_zoom(args: argparse.Namespace, out: Path, frames_dir: Path, interrupted: bool) -> int:
    """Write the animation of the finished frames: the exit status."""
    paths = [_frame_path(frames_dir, i) for i in range(args.zoom_frames) if _frame_path(frames_dir, i).is_file()]
    if interrupted and not paths:
        # _dream_zoom closed the --tensorboard log with the steps of frame 0 made before Ctrl-C
        written = ("no frame or animation was written, the TensorBoard log in "
                   f"{str(args.tensorboard)!r} keeps the steps so far") if args.tensorboard is not None \
            else "nothing was written"
        print(f"dreamlab: interrupted during frame 0, before any zoom frame was finished; {written} "
              "(run the command again to start over)", file=sys.stderr)
        return EXIT_INTERRUPTED
    write_animation(paths, out, args.fps)
    print(out)
    frames = "the finished frame" if len(paths) == 1 else f"the {len(paths)} finished frames"
    return _finish(interrupted, f"{frames} (run again to resume)")


# the CLI's own names for dream()'s ranges, with what to try
NUMBER_OPTIONS = (("octave_scale", "a finite number above 1", lambda v: v > 1, "try 1.4 (the default) to 2"),
                  ("lr", "a finite number above 0, at most 1 (the mean change of a pixel per step in [0,1] "
                         "units: a larger step is more than the whole pixel range, and gives noise)",
                   lambda v: 0 < v <= LR_MAX, f"try {LR:g} (the default)"),
                  ("jitter", "0 or more pixels", lambda v: v >= 0, "--jitter 0 turns the roll off"),
                  ("tile", "at least 64 pixels, or auto", lambda v: v >= 64,
                   "the default is auto (1024); lower it (not below 64) to use less memory"),
                  ("overlap", "0 or more pixels", lambda v: v >= 0,
                   "leave it out for the objective layer's receptive field"))


def _check_numbers(args: argparse.Namespace) -> None:
    """Refuse out-of-range numbers before any work, naming the option (dream() names its Python arguments)."""
    for name, valid, ok, hint in NUMBER_OPTIONS:
        value = getattr(args, name)
        if value is None or value == "auto":
            continue
        if not (math.isfinite(value) and ok(value)):
            option = "--" + name.replace("_", "-")
            raise DreamlabError(f"{option} {value:g} is out of range; valid: {valid}; {hint}")


# the highest rate each format's frame delay can hold: a GIF's is in 10 ms steps, a WebP's in 1 ms steps; an MP4's
# time base holds any rate
MAX_FPS = {".gif": 100, ".webp": 1000}


def _check_fps(fps: int, suffix: str) -> None:
    """Refuse a --fps that the animation's format cannot show (its frames would get a delay of 0)."""
    limit = MAX_FPS.get(suffix)
    if limit is not None and fps > limit:
        step = "10 ms" if limit == 100 else "1 ms"
        others = " (or write .webp, up to 1000, or .mp4)" if suffix == ".gif" else " (or write .mp4)"
        kind = "GIF" if suffix == ".gif" else "WebP"
        raise DreamlabError(f"--fps {fps} is more than a {kind} can show: its frame delay is in {step} steps, so "
                            f"{limit} fps at most; give --fps {limit} or less{others}")


def _tile(text: str) -> int | str:
    """argparse type of --tile: a whole number of pixels, or auto."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of pixels or auto") from None


def _zoom_options(args: argparse.Namespace, zoom: bool) -> None:
    """Refuse the zoom's options without --zoom-frames (they would do nothing); fill in their defaults."""
    from dreamlab.errors import check_range

    given = given_options(args, [*ZOOM_DEFAULTS, "frames_dir"])
    if given and not zoom:
        one = len(given) == 1
        raise DreamlabError(f"{', '.join(given)} appl{'ies' if one else 'y'} to the endless zoom only: add "
                            f"--zoom-frames N, or leave {'it' if one else 'them'} out")
    for name, value in ZOOM_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    # before any work (dream() checks them too, after the model loads)
    check_range("--zoom", args.zoom, *ZOOM_RANGE, "(magnification per frame)",
                "; beyond 4 a frame is a blur of a few pixels of the last, below 0.25 mostly mirrored border")
    check_range("--rotate", args.rotate, *ROTATE_RANGE, "degrees per frame", "; a whole turn either way at most")


def _finish(interrupted: bool, what: str) -> int:
    if interrupted:
        print(f"dreamlab: interrupted; saved {what}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def _frame_path(folder: Path, index: int) -> Path:
    return folder / f"frame_{index:04d}.png"


def _tiling(args: argparse.Namespace, loaded, photo) -> DreamTiling:
    """How dream() will cut this zoom's frames (the photo's size) into tiles."""
    from dreamlab.optvis.dream import dream_tiling

    return dream_tiling(loaded, tuple(photo.shape[-2:]), args.objective, octaves=args.octaves,
                        octave_scale=args.octave_scale, tile=args.tile, overlap=args.overlap, device=args.device)


def _zoom_keys(args: argparse.Namespace, loaded, tiling: DreamTiling) -> tuple[str, Callable[[object, object], str]]:
    """What decides a zoom's frames, which a resumed run must have the same or its frames would not continue: (the
    key, the older key of --tile and --overlap values). The key holds the tiling as the octaves' layouts, so
    --tile and --overlap values that cut them alike (a tile larger than the photo, or auto; an overlap rounded up
    to the same 32) are the same zoom. The older key, which held --tile and --overlap as given, is what frames
    written before it carry (`_an_older_frame`)."""
    from dreamlab.io import is_sample_photo

    digest = hashlib.sha256()
    for path in (args.photo, args.guide):
        if is_sample_photo(path):
            digest.update(f"sample:{path}".encode())
        else:
            digest.update(Path(path).read_bytes() if path else b"")
    # the default objective named, or spaced otherwise, is the same objective
    objective = "".join((args.objective or loaded.recipe.default_layer or "").split())
    before = [loaded.recipe.name, loaded.recipe.hash(), loaded.weights, objective, args.octaves, args.octave_scale,
              args.steps, args.lr, args.jitter]
    after = [args.seed, args.zoom, args.rotate]

    def key(*tiles: object) -> str:
        settings = digest.copy()
        settings.update(json.dumps([*before, *tiles, *after]).encode())
        return settings.hexdigest()[:16]

    return key({"layouts": [list(cut) if cut else None for cut in tiling.layouts]}), key


def _frames_done(folder: Path, key: str, older: Callable[[object, object], str], args: argparse.Namespace,
                 tiling: DreamTiling) -> int:
    """How many frames (0, 1, ... in a row) a stopped run with the same settings (`key`, or an `older` key that
    `_an_older_frame` accepts: see `_zoom_keys`) left in `folder`."""
    from PIL import UnidentifiedImageError

    from dreamlab.io import is_whole_png, read_png_text

    done = 0
    while done < args.zoom_frames and _frame_path(folder, done).is_file():
        path = _frame_path(folder, done)
        try:
            text = read_png_text(path)
            if not is_whole_png(path):  # PIL reads a PNG cut short after its pixels without a word
                raise OSError("image file is truncated")
        except (OSError, ValueError, SyntaxError, EOFError) as exc:  # truncated, not a PNG, unreadable
            reason = str(exc).splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
            if isinstance(exc, UnidentifiedImageError):
                reason = "not a PNG image"
            raise DreamlabError(f"frame {str(path)!r} in --frames-dir is unreadable ({reason}); remove it (and the "
                                f"frames after it) to dream it again, or give another --frames-dir") from None
        if text.get("dreamlab:zoom_key") != key and not _an_older_frame(text, older, args, tiling):
            changed = _changed_settings(text, args, tiling)
            if changed:
                raise DreamlabError(f"{str(folder)!r} holds frames of a zoom with other settings: "
                                    f"{', '.join(changed)}; give theirs, another --frames-dir, or remove those frames "
                                    f"to start over")
            raise DreamlabError(f"{str(folder)!r} holds frames of a zoom with other settings (or another photo); "
                                f"give another --frames-dir, or remove those frames to start over")
        done += 1
    _check_no_folders(folder)
    return done


# the zoom's numeric settings that each frame's provenance records under dreamlab:NAME
FRAME_NUMBERS = ("octaves", "octave_scale", "steps", "lr", "jitter", "seed", "zoom", "rotate")


def _changed_settings(text: dict[str, str], args: argparse.Namespace, tiling: DreamTiling) -> list[str]:
    """What of this run differs from a frame's provenance `text`, in CLI terms (empty where the frame does not
    say: the model, its weights or the guide then differ)."""
    from dreamlab.io import file_digest

    changed = []
    for name in FRAME_NUMBERS:
        there, now = text.get(f"dreamlab:{name}"), getattr(args, name)
        try:
            differs = float(there) != float(now)
        except (TypeError, ValueError):
            continue
        if differs:
            shown = now if isinstance(now, int) else f"{now:g}"
            changed.append(f"--{name.replace('_', '-')} {there} there (this run: {shown})")
    there = text.get("dreamlab:objective", "")
    if args.objective and "".join(args.objective.split()) != "".join(there.split()):
        changed.append(f"--objective {there} there (this run: {args.objective})")
    photo = text.get("dreamlab:photo")
    if text.get("dreamlab:photo_sha256_of") == "file" and Path(args.photo).is_file():  # a file: its bytes decide
        other_photo = file_digest(Path(args.photo)) != text.get("dreamlab:photo_sha256")
    else:  # a sample photo: its name
        other_photo = photo != str(args.photo)
    if photo is not None and other_photo:
        changed.append(f"the photo ({photo} there, {args.photo} in this run)")
    there = _frame_tiling(text, tiling)
    if there is not None and there.layouts != tiling.layouts:
        changed.append(f"--tile/--overlap: {there.described()} there (this run: {tiling.described()})")
    return changed


def _an_older_frame(text: dict[str, str], older: Callable[[object, object], str], args: argparse.Namespace,
                    tiling: DreamTiling) -> bool:
    """Whether a frame carries the older key (`older(tile, overlap)`: --tile and --overlap as given) of this run's
    settings: with this run's values, or with values its provenance allows (auto, or the tile it records; no
    overlap, or the one it records) that cut the frames as this run does."""
    found = text.get("dreamlab:zoom_key")
    if found == older(args.tile, args.overlap):
        return True
    there = _frame_tiling(text, tiling)
    if there is None or there.layouts != tiling.layouts:
        return False
    tiles = ["auto", *([there.tile] if there.tile is not None else [])]
    overlaps = [None, *([there.overlap] if there.tiled else [])]
    return found in {older(tile, overlap) for tile in tiles for overlap in overlaps}


def _frame_tiling(text: dict[str, str], tiling: DreamTiling) -> DreamTiling | None:
    """The tiling a frame's provenance records (its tile and overlap) laid on this run's octave sizes, or None
    where the frame does not say."""
    from dreamlab.optvis.dream import DreamTiling
    from dreamlab.optvis.dream_tiles import layout

    try:
        tile, overlap = text["dreamlab:tile"], text["dreamlab:overlap"]
        limit = None if tile == "none" else int(tile)
        tiled = overlap.isdigit()  # else "none (one piece)"
        used = int(overlap) if tiled else tiling.overlap
    except (KeyError, ValueError):
        return None
    cuts = tuple(layout(*size, limit, used) if tiled else None for size in tiling.sizes)
    return DreamTiling(limit, used, tiled, cuts, tiling.sizes)


def _check_no_folders(folder: Path) -> None:
    """Refuse, before dreaming, something that is not a file (a folder) named like a frame: writing the frame
    there would fail after the work."""
    for entry in sorted(folder.glob("frame_*.png")) if folder.is_dir() else []:
        if not entry.is_file():
            raise DreamlabError(f"{str(entry)!r} in --frames-dir is not a file (a folder?) where a zoom frame goes; "
                                f"remove it, or give another --frames-dir")


EXIF_IMAGE_DESCRIPTION = 0x010E  # the EXIF tag a WebP animation's provenance is written to


def _imageio():
    import importlib.util

    try:
        import imageio.v2 as imageio
    except ImportError:
        imageio = None
    if imageio is None or importlib.util.find_spec("imageio_ffmpeg") is None:  # the ffmpeg binary imageio calls
        raise DreamlabError("MP4 needs imageio and imageio-ffmpeg: pip install 'dreamlab[video]', or write "
                            ".webp or .gif")
    return imageio


def _write_mp4(frames: list[Path], out: Path, fps: int, description: str) -> Path:
    """The frames as an H.264 MP4, written to a temp name beside `out` and renamed when whole. libx264's yuv420p
    needs even sides: an odd last row or column is repeated (imageio's own fix would rescale every frame)."""
    import numpy as np
    from PIL import Image

    from dreamlab.errors import first_line

    imageio = _imageio()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem[:80]}.{secrets.token_hex(6)}.tmp.mp4")  # imageio picks ffmpeg by suffix
    try:
        with imageio.get_writer(tmp, fps=fps, macro_block_size=1, ffmpeg_log_level="quiet",
                                output_params=["-metadata", f"comment={description}"]) as writer:
            for path in frames:
                with Image.open(path) as image:
                    array = np.asarray(image.convert("RGB"))
                height, width = array.shape[:2]
                writer.append_data(np.pad(array, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge"))
        os.replace(tmp, out)
    except Exception as exc:  # ffmpeg's failures arrive as OSError, RuntimeError or BrokenPipeError
        reason = first_line(exc)
        if not isinstance(exc, (OSError, RuntimeError)):  # imageio-ffmpeg's own, e.g. "list index out of range"
            reason = _encoder_failure(exc)
        raise DreamlabError(f"could not encode {str(out)!r} ({reason}); the frames are kept in "
                            f"{str(frames[0].parent)!r}: run again with -o NAME.webp or .gif and "
                            f"--frames-dir {frames[0].parent} to make the animation from them") from None
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _loaded(path: Path) -> Image:
    """A frame's pixels with its file closed: Pillow keeps an opened image's file open until it is loaded, and a
    long zoom's frames would pass the open-file limit (256 on macOS, 1024 on Linux) before they are encoded."""
    from PIL import Image

    with Image.open(path) as image:
        image.load()
    return image


def _encoder_failure(exc: BaseException) -> str:
    """Why an MP4 failed where imageio-ffmpeg raised a bare Python error (an IndexError when the ffmpeg it runs
    does not list its encoders): the ffmpeg it ran, and how to pick another."""
    from dreamlab.errors import first_line

    try:
        import imageio_ffmpeg

        exe = repr(imageio_ffmpeg.get_ffmpeg_exe())
    except Exception:  # noqa: BLE001 - naming the binary is a courtesy; the failure is said anyway
        exe = "its ffmpeg"
    return (f"imageio-ffmpeg could not use the ffmpeg {exe}: {type(exc).__name__}: {first_line(exc)}; check that "
            f"it is a working ffmpeg with H.264, or name one with IMAGEIO_FFMPEG_EXE")


def animation_description(frames: list[Path], fps: int) -> str:
    """The provenance an animation carries, as JSON: its first frame's PNG text (less the frame's index and
    score, which are the frame's own), the frame count and the rate."""
    from dreamlab.io import read_png_text

    text = {k: v for k, v in read_png_text(frames[0]).items() if k not in ("dreamlab:frame", "dreamlab:score")}
    return json.dumps({**text, "dreamlab:frames": str(len(frames)), "dreamlab:fps": str(fps)}, sort_keys=True)


def write_animation(frames: list[Path], out: Path, fps: int) -> Path:
    """The frames (PNG files) as one animation; the format follows `out`'s suffix (.webp, .gif, .mp4). The
    provenance goes where each format keeps text: a GIF's comment, a WebP's EXIF ImageDescription, an MP4's
    comment tag (`animation_description`)."""
    from PIL import Image

    from dreamlab.io import atomic_write_bytes

    if not frames:
        raise DreamlabError("no zoom frame was finished, so there is no animation to write")
    description = animation_description(frames, fps)
    if out.suffix.lower() == ".mp4":
        return _write_mp4(frames, out, fps, description)
    from io import BytesIO

    images = [_loaded(path) for path in frames]
    buffer = BytesIO()
    fmt = "WEBP" if out.suffix.lower() == ".webp" else "GIF"
    if fmt == "WEBP":
        exif = Image.Exif()
        exif[EXIF_IMAGE_DESCRIPTION] = description
        extra = {"quality": 90, "method": 4, "exif": exif}
    else:
        extra = {"comment": description.encode()}
    images[0].save(buffer, format=fmt, save_all=True, append_images=images[1:], duration=round(1000 / fps),
                   loop=0, **extra)
    return atomic_write_bytes(out, buffer.getvalue())

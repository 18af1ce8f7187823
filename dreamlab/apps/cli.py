"""The `dreamlab` command line: a table of subcommands, each a module in ``dreamlab.apps.commands``.

Only the module of the subcommand being run is imported (``dreamlab --help`` imports none), so a new
subcommand is one module with ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``, plus one line in
``COMMANDS``. Every user error prints one line, ``dreamlab: error: ...``, and exits with status 2 (a failed download
or a failure of the machine with 1); Ctrl-C exits with 130 after saving what was computed.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any

from dreamlab.apps.args import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, OneLineParser, unrecognized
from dreamlab.errors import DreamlabError, DreamlabNote

# name -> (module, one-line help shown by `dreamlab --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "render": ("dreamlab.apps.commands.render", "optimize images that maximize a unit, channel, logit or layer"),
    "layers": ("dreamlab.apps.commands.layers", "list addressable layers with output shapes and parameter counts"),
    "recipes": ("dreamlab.apps.commands.recipes", "list the shipped recipes"),
    "gallery": ("dreamlab.apps.commands.gallery",
                "render every channel of some layers into a browsable, resumable folder"),
    "quality": ("dreamlab.apps.commands.quality",
                "run the quality measures against their goals; exits 1 when a goal is missed"),
    "bench": ("dreamlab.apps.commands.bench",
              "time fixed render workloads on random-weight GoogLeNet; prints JSON lines"),
    "fetch": ("dreamlab.apps.commands.fetch", "download (and convert) the weights of a model not shipped (hed-vgg16, inceptionv1)"),
    "cam": ("dreamlab.apps.commands.cam",
            "Grad-CAM / Grad-CAM++ / LayerCAM / Score-CAM of a target on a photo, overlaid as a heat map"),
    "attribute": ("dreamlab.apps.commands.attribute",
                  "per-pixel attributions (saliency, input x gradient, SmoothGrad, IG, deconvnet, guided backprop, "
                  "guided Grad-CAM, occlusion); --sanity"),
    "graph": ("dreamlab.apps.commands.graph", "draw the architecture as a diagram (DOT, SVG, PNG or PDF) with shapes"),
    "kernels": ("dreamlab.apps.commands.kernels", "save a conv layer's weights as a grid of tiles"),
    "features": ("dreamlab.apps.commands.features", "save the activation maps a photo produces at a layer"),
    "grid": ("dreamlab.apps.commands.grid", "activation grid: render what a layer sees in each cell of a photo"),
    "examples": ("dreamlab.apps.commands.examples",
                 "the photos that drive units hardest, cropped to what each unit saw"),
    "groups": ("dreamlab.apps.commands.groups",
               "factor a photo's activations at a layer into neuron groups (NMF): maps and renders"),
    "invert": ("dreamlab.apps.commands.invert",
               "feature inversion: render what layers keep of a photo (or lucid's caricature)"),
    "dream": ("dreamlab.apps.commands.dream", "DeepDream on a photo (octaves, tiles, --guide); --zoom-frames N "
                                              "for the endless zoom"),
}


def _chosen(argv: Sequence[str]) -> str | None:
    return argv[0] if argv and argv[0] in COMMANDS else None


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The parser, with the arguments of the subcommand named in ``argv`` (the others are listed only)."""
    from dreamlab import __version__

    parser = OneLineParser(prog="dreamlab", description="Feature visualization for PyTorch models.")
    parser.add_argument("--version", action="version", version=f"dreamlab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser, metavar="COMMAND")
    chosen = _chosen(argv)
    for name, (module_name, help_text) in COMMANDS.items():
        if name != chosen:
            sub.add_parser(name, help=help_text)
            continue
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=help_text, description=getattr(module, "DESCRIPTION", help_text))
        module.add_arguments(p)
        p.set_defaults(run=module.run)
        p.argv = list(argv)  # for the hints in its error messages
        parser.chosen = p
    return parser


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    """Parse `argv`; options the subcommand does not have are its error (with close matches), not the top's."""
    parser = build_parser(argv)
    chosen = getattr(parser, "chosen", parser)
    if getattr(chosen, "intermixed", False):  # MODEL LAYER with options anywhere, as in `kernels M --weights none L`
        args, extras = chosen.parse_known_intermixed_args(argv[1:], argparse.Namespace(command=argv[0]))
    else:
        args, extras = parser.parse_known_args(argv)
    if extras:
        chosen.error(unrecognized(extras, chosen, argv))
    return args


@contextmanager
def _recipe_code_allowed(allowed: bool) -> Iterator[None]:
    """--allow-recipe-code for this command only: the environment variable that dreamlab.models.loading reads."""
    name, before = "DREAMLAB_ALLOW_RECIPE_CODE", os.environ.get("DREAMLAB_ALLOW_RECIPE_CODE")
    if allowed:
        os.environ[name] = "1"
    try:
        yield
    finally:
        if allowed and before is None:
            os.environ.pop(name, None)
        elif allowed:
            os.environ[name] = before


class _StderrWithoutReader:
    """sys.stderr for one command: once its reader has gone (`dreamlab render ... 2>&1 | head -1`), messages are
    dropped instead of raising BrokenPipeError, so the work goes on and its files are still written."""

    def __init__(self, stream: Any):
        self._stream, self._gone = stream, False

    def write(self, text: str) -> int:
        if not self._gone:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._gone = True
        return len(text)

    def flush(self) -> None:
        if not self._gone:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._gone = True

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding, ...: the stream's own
        return getattr(self._stream, name)


def _with_model(message: str, model: object) -> str:
    """`message` with the library's placeholder in "`dreamlab layers MODEL`" filled in with the command's model."""
    import shlex

    if model is None or not str(model):
        return message
    return message.replace("`dreamlab layers MODEL`", f"`dreamlab layers {shlex.quote(str(model))}`")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; every failure is one line on stderr and an exit status (see dreamlab.apps.args)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    stderr, sys.stderr = sys.stderr, _StderrWithoutReader(sys.stderr)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("once", DreamlabNote)  # a gallery's batches would repeat it
            shown = warnings.showwarning
            # "once" alone does not hold: Python forgets what it showed whenever the filters change (an import
            # that adds one, any catch_warnings), so the notes shown are remembered here too
            warnings.showwarning = partial(_show_note, shown, set())
            return _main(argv)
    finally:
        sys.stderr = stderr


def _show_note(show: Callable[..., None], seen: set[str], message: Warning | str, category: type[Warning],
               *args: Any, **kwargs: Any) -> None:
    """A DreamlabNote as the line `dreamlab: note: ...`, once per run (`seen`: the notes shown); any other warning
    as Python shows it."""
    if issubclass(category, DreamlabNote):
        if str(message) in seen:
            return
        seen.add(str(message))
        print(f"dreamlab: note: {message}", file=sys.stderr, flush=True)
    else:
        show(message, category, *args, **kwargs)


def _main(argv: list[str]) -> int:
    model = None
    try:
        args = _parse(argv)
        model = getattr(args, "recipe", None) or getattr(args, "model", None)  # --recipe beats --model's default
        with _recipe_code_allowed(getattr(args, "allow_recipe_code", False)):
            return args.run(args)
    except DreamlabError as exc:
        print(f"dreamlab: error: {_with_model(str(exc), model)}", file=sys.stderr)
        return exc.exit_code  # EXIT_USAGE, or EXIT_FAILURE for a failure of the surroundings (DownloadError)
    except KeyboardInterrupt:
        print("dreamlab: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (`dreamlab recipes | head -3`): nothing to report
        return EXIT_OK
    except OSError as exc:  # a real failure of the machine (disk full mid-write): name the user's path
        where = f": {exc.filename}" if exc.filename else ""
        print(f"dreamlab: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_FAILURE

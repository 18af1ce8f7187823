"""What every subcommand shares: exit codes, the one-line-error parser, argument types, model arguments."""
from __future__ import annotations

import argparse
import difflib
import functools
import os
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from dreamlab.errors import OTHER_TOOLS_NAMES

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


_SAMPLE_PHOTOS = ("china", "flower")  # io.SAMPLE_PHOTOS, named here so that parsing does not import torch
_PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one line with dreamlab's prefix (no usage dump)."""

    argv: list[str] = []  # the command line, set by cli.build_parser for the chosen subcommand
    intermixed = False  # parse with parse_known_intermixed_args (set by add_positional_model for MODEL LAYER)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"dreamlab: error: {message}{self._hint(message)} (see {self.prog} --help)\n")

    def _hint(self, message: str) -> str:
        """What argparse's message leaves out, where the command line shows the likely slip."""
        dashed = [a for a in self.argv[1:] if a.startswith("-") and a != "-" and not self._is_option(a)
                  and not _is_number(a)]
        command = self.prog.split(" ")[-1]
        lacking = [a.split("=", 1)[0] for a in dashed if (command, a.split("=", 1)[0]) in NOT_HERE]
        if message.startswith("the following arguments are required") and lacking:  # not a value: an option
            return f"; {self.prog} has no {lacking[0]}: {NOT_HERE[command, lacking[0]]}"
        if message.startswith("the following arguments are required") and dashed:
            return (f"; a value that starts with '-' ({dashed[0]}) goes after --: "
                    f"{self.prog} [OPTIONS] -- {dashed[0]}")
        photo = re.match(r"the following arguments are required: (--images?)/-i", message)
        if photo:  # `dreamlab cam lenet-digits digit4.png`: the photo given as dream takes it, without --image
            words = self._photo_words()[:None if photo[1] == "--images" else 1]
            if words:
                return f"; give the photo{'s' if len(words) > 1 else ''} with the option: {photo[1]} {' '.join(words)}"
        return self._other_hint(message)

    def _photo_words(self) -> list[str]:
        """The words of the command line, not option values, that name a photo: an image file or folder
        (`--images`), or a sample photo's name."""
        words, value_next = [], False
        for arg in self.argv[1:]:
            if value_next:  # the value of the option before it (-o out.png)
                value_next = False
                continue
            if arg.startswith("-"):
                action = self._option_string_actions.get(arg.split("=", 1)[0])
                value_next = action is not None and action.nargs != 0 and "=" not in arg
                continue
            if (arg in _SAMPLE_PHOTOS or Path(arg).suffix.lower() in _PHOTO_SUFFIXES
                    or (Path(arg).is_dir() and arg not in ("", "."))):
                words.append(arg)
        return words

    def _other_hint(self, message: str) -> str:
        expected = re.match(r"argument (\S+): expected one argument$", message)
        if expected:  # `--objective -features.22`: argparse reads the value as an option
            flags = expected[1].split("/")
            value = next((b for a, b in zip(self.argv, self.argv[1:]) if a in flags and b.startswith("-")), None)
            if value is not None:
                return f"; a value that starts with '-' goes after '=': {flags[-1]}={value}"
        if message.startswith("argument --compile: invalid choice"):
            positionals = any(not a.option_strings for a in self._actions)
            return ("; --compile takes an optional MODE: " + ("put it after the positional arguments, or "
                                                               if positionals else "") + "write --compile=default")
        command = re.match(r"argument COMMAND: invalid choice: '(.*?)' \(choose from (.*)\)$", message)
        if command:
            close = difflib.get_close_matches(command[1], re.findall(r"'([^']+)'", command[2]), n=2)
            return f"; did you mean {' or '.join(close)}?" if close else ""
        return ""

    def _is_option(self, text: str) -> bool:
        return text.split("=", 1)[0] in self._option_string_actions


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# what other feature-visualization and training tools call some of our flags (lucent, torch-dreams, DeepDream
# scripts; errors.OTHER_TOOLS_NAMES as flags): no spelling is close enough for difflib to find. Looked up with '_'
# read as '-' (--num_steps), and a typo of one (--iteratoins) is matched too.
ALIASES = {f"--{name.replace('_', '-')}": f"--{ours.replace('_', '-')}" for name, ours in OTHER_TOOLS_NAMES.items()} | {
    "--cuda": "--device cuda", "--gpu": "--device cuda"}


# options of one command that another lacks on purpose: (command, option) -> why, and what to run instead
NOT_HERE = {("dream", "--alpha"): "transparent images are dreamlab render's (dreamlab render OBJECTIVE --alpha): "
                                  "dream changes a photo, which stays opaque everywhere"}


def unrecognized(extras: Sequence[str], parser: argparse.ArgumentParser, argv: Sequence[str] = ()) -> str:
    """argparse's 'unrecognized arguments' message, with the options close to a mistyped one, or how to write a
    comma-separated list that a space split (`--layers conv1, conv2`; `argv`: the whole command line)."""
    message = f"unrecognized arguments: {' '.join(extras)}"
    command = parser.prog.split(" ")[-1]
    for extra in extras:
        if (command, extra.split("=", 1)[0]) in NOT_HERE:
            return f"{message}; {NOT_HERE[command, extra.split('=', 1)[0]]}"
    for i, word in enumerate(argv[:-1]):  # an option's list only: an objective (render's) has its own grammar
        listed = word if word.startswith("--") and "=" in word else \
            f"{argv[i - 1]} {word}" if i and argv[i - 1].startswith("--") else ""
        if listed.endswith(",") and argv[i + 1] in extras and not argv[i + 1].startswith("-"):
            return f"{message}; a comma-separated list is written without spaces: {listed}{argv[i + 1]}"
    options = [o for o in parser._option_string_actions if o.startswith("--")]
    model_first = any(a.dest == "model" and not a.option_strings for a in parser._actions)
    model_given = any(word in ("-m", "--model") or word.startswith("--model=") for word in argv)
    model_option = "--model" in parser._option_string_actions and not model_first and not model_given
    value_of_flag = False  # the word after an unknown --flag is its value, not a misplaced argument
    guess = ""  # the first typo's close matches, said unless a later flag has a sure hint (another tool's name)
    for extra in extras:
        if value_of_flag and not extra.startswith("-"):
            value_of_flag = False
            continue
        if extra.split("=", 1)[0] == "--model" and model_first:  # gallery: its model comes first
            return f"{message}; here the model is the first argument, without --model: {parser.prog} MODEL ..."
        if model_option and not extra.startswith("-"):  # `dreamlab dream lenet-digits china`: MODEL-first habit
            first = next((a.metavar or a.dest.upper() for a in parser._actions
                          if not a.option_strings and a.dest != "help"), "...")
            return f"{message}; here the model is an option: {parser.prog} {first} --model MODEL"
        if extra.startswith("--"):
            value_of_flag = "=" not in extra
            hint = _flag_hint(extra.split("=", 1)[0], options)
            if hint.startswith("use "):
                return f"{message}; {hint}"
            guess = guess or hint
    return f"{message}; {guess}" if guess else message


def _flag_hint(flag: str, options: Sequence[str]) -> str:
    """What to write for an unknown --flag: ours where it is another tool's name (ALIASES) or is written with '_'
    for '-', else the options (and the other tools' names) it is a typo of; '' when nothing is close."""
    dashed = flag.replace("_", "-")
    if dashed != flag and dashed in options:
        return f"use {dashed} (options are written with '-', not '_')"
    ours = ALIASES.get(dashed, "")
    if ours.split(" ")[0] in options:  # another tool's name for one of ours
        return f"use {ours} (dreamlab's name for {dashed})"
    aliases = [name for name, target in ALIASES.items() if target.split(" ")[0] in options]
    # 0.7, not difflib's 0.6: --size is no typo of --image
    close = difflib.get_close_matches(dashed, options, n=2, cutoff=0.7)
    alias = difflib.get_close_matches(dashed, aliases, n=1, cutoff=0.7)
    ratio = lambda other: difflib.SequenceMatcher(None, dashed, other).ratio()  # noqa: E731
    if alias and (not close or ratio(alias[0]) > ratio(close[0])):  # --iteratoins: a typo of --iterations
        return f"did you mean {ALIASES[alias[0]]} (dreamlab's name for {alias[0]})?"
    if close:
        return f"did you mean {' or '.join(close)}?"
    return ""


def int_list(text: str) -> list[int]:
    """``"64,256,512"`` -> ``[64, 256, 512]`` (for --thresholds); an empty list or item (`''`, an unset shell
    variable; `64,,256`) is refused, as gallery's --layers refuses one, rather than read as no snapshots."""
    items = [v.strip() for v in text.split(",")]
    if not all(items):
        where = "is empty" if not any(items) else "has an empty item (two commas in a row, or one at an end)"
        raise argparse.ArgumentTypeError(f"{text!r} {where}; give comma-separated step counts like 64,256,512, or "
                                         f"leave the option out")
    try:
        return [int(v) for v in items]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated step counts like 64,256,512, got {text!r}")


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def image_size(text: str) -> int | tuple[int, int]:
    """argparse type of render's --size: '224' (square) or '96x128' (height x width, as provenance writes it)."""
    height, cross, width = text.strip().lower().partition("x")
    try:
        sides = (int(height), int(width)) if cross else int(height)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected pixels, N or HEIGHTxWIDTH (224, 96x128), got {text!r}") from None
    if min(sides if isinstance(sides, tuple) else (sides,)) < 1:
        raise argparse.ArgumentTypeError(f"expected positive pixels, N or HEIGHTxWIDTH (224, 96x128), got {text!r}")
    return sides


def check_image_size(flag: str, size: int | tuple[int, int] | None) -> None:
    """A render's --size or --model-size (render and gallery alike): each side within render's bounds, checked
    before the model loads; None (left out) passes."""
    from dreamlab.errors import check_range
    from dreamlab.models.summary import MAX_INPUT_SIZE
    from dreamlab.optvis.settings import MIN_SIZE

    for side in (size if isinstance(size, tuple) else (size,)) if size is not None else ():
        check_range(flag, side, MIN_SIZE, MAX_INPUT_SIZE, "pixels a side")


def square_size(text: str) -> int:
    """argparse type of gallery's --size: one side, as render's --size reads it; HEIGHTxWIDTH is told that a
    gallery's images are square."""
    try:
        sides = image_size(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected positive pixels, one side (224), got {text!r}") from None
    if isinstance(sides, tuple):
        raise argparse.ArgumentTypeError(f"a gallery's images are square: give one side in pixels (e.g. "
                                         f"{max(sides)}), got {text!r}")
    return sides


def output_path(text: str) -> Path:
    """argparse type of output paths: refuses an empty one (an unset shell variable), which Path would read as
    the current folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path; give a file or folder name")
    if text.endswith(("/", os.sep)) and Path(text).suffix.lower() == ".png":  # Path('x.png/') is the file x.png
        raise argparse.ArgumentTypeError(f"{text!r} ends with '/', a folder, but is named like a PNG file; give "
                                         f"{text.rstrip('/' + os.sep)!r} for the file, or a folder name without .png")
    return Path(text)


def input_path(text: str) -> Path:
    """argparse type of files to read: refuses an empty path, which Path would read as the current folder (and
    the error would then name '.'). A path with a folder part that names a sample photo (./china) is made
    absolute, so it stays a file: only a bare name means a sample."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path; give a file name")
    path = Path(text)
    if "/" in text and len(path.parts) == 1:  # ./china, china/: Path drops what makes it a file, not a sample name
        from dreamlab.io import SAMPLE_PHOTOS  # (torch: only here)

        if str(path) in SAMPLE_PHOTOS:
            return path.absolute()
    return path


def photo_path(text: str) -> str | Path:
    """argparse type of photos: a bare sample name (china, flower) stays a plain string, which is what names the
    sample photo (dreamlab.io.is_sample_photo: a Path is always a file); anything else is `input_path`'s."""
    from dreamlab.io import SAMPLE_PHOTOS  # (torch: only here)

    return text if text in SAMPLE_PHOTOS else input_path(text)


def photo_output(args: argparse.Namespace, model: str | Path, kind: str) -> Path:
    """--out, or MODEL_LAYER_PHOTO_KIND.png (the photo in the name: two photos' files must not overwrite each
    other), checked before the model loads."""
    from dreamlab.io import check_output_file, safe_name

    out = args.out or Path(f"{safe_name(Path(str(model)).stem)}_{safe_name(args.layer)}_"
                           f"{safe_name(Path(args.image).stem)}_{kind}.png")
    return check_output_file(out, reads=[args.image])


def nonempty(text: str) -> str:
    """argparse type of names (a model, weights): refuses an empty or blank one."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty name")
    return text


def given_options(args: argparse.Namespace, names: Sequence[str]) -> list[str]:
    """The options among `names` (argparse dests) that the user gave, as `--name`, so that an option a command
    would ignore can be refused: those added by `add_given_option`, and those whose default is None (or False,
    for flags)."""
    def given(name: str) -> bool:
        flag = getattr(args, f"{name}_given", None)
        return flag if flag is not None else getattr(args, name) is not None and getattr(args, name) is not False

    return [f"--{name.replace('_', '-')}" for name in names if given(name)]


def check_tensorboard(args: argparse.Namespace) -> None:
    """Before any work: --tensorboard's folder can be written, and --tensorboard-every comes with it."""
    from dreamlab.errors import DreamlabError
    from dreamlab.io import check_writable

    if args.tensorboard is not None:
        from dreamlab.inspect.tensorboard import require_tensorboard

        require_tensorboard()  # before the model loads (tens of seconds, or a download)
        check_writable(args.tensorboard, "--tensorboard folder", folder=True)
    elif given_options(args, ["tensorboard_every"]):
        raise DreamlabError("--tensorboard-every applies to a TensorBoard log: add --tensorboard DIR, or leave it out")


# --weights of the commands that render (render, gallery, dream, ...): one text, one default
WEIGHTS_HELP = ("'default' (the recipe's, downloaded by torchvision on first use), 'none' (random init), a torchvision "
                "weights name, or PATH to a state-dict file")


def add_model_arguments(p: argparse.ArgumentParser, default_model: str | None = "googlenet") -> None:
    """--model/--weights/--recipe, shared by every subcommand that loads a model; `model_recipe(args)` reads them."""
    add_given_option(p, "--model", "-m", default=default_model, type=nonempty,
                     help=f"recipe name ({recipe_names()}) or any torchvision model name "
                          "(default: %(default)s)")
    p.add_argument("--weights", default="default", type=nonempty, help=WEIGHTS_HELP)
    p.add_argument("--recipe", type=input_path,
                   help="a recipe TOML file, instead of --model (the file names its model; giving both is refused)")
    add_allow_code_argument(p)


def add_given_option(p: argparse.ArgumentParser, *flags: str, **kwargs: Any) -> None:
    """An option with a default whose use `given_options` still tells (DEST_given: False until it is given)."""
    action = p.add_argument(*flags, action=_Given, **kwargs)
    p.set_defaults(**{f"{action.dest}_given": False})


class _Given(argparse.Action):
    """Stores the value and notes that it was given, as `DEST_given` (a default would hide that; see
    `given_options`)."""

    def __call__(self, parser, namespace, values, option_string=None):  # noqa: ANN001 - argparse's signature
        setattr(namespace, self.dest, values)
        setattr(namespace, f"{self.dest}_given", True)


REPLACED = "; a file already there is replaced"  # every -o file's help: the one policy (gallery resumes instead)
LIST_ONCE = "give them in one comma-separated list"  # add_once_option's `once` for a list option (an example follows)


def add_once_option(p: argparse.ArgumentParser, *flags: str, once: str, **kwargs: Any) -> None:
    """An option that takes one value per run: given twice it is refused, in one line that names both values and
    ends with `once` (what to do instead), where argparse would silently keep the last."""
    p.add_argument(*flags, action=_Once, once=once, **kwargs)


class _Once(argparse.Action):
    """Stores the value; a second one is an error (see `add_once_option`)."""

    def __init__(self, *args: Any, once: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.once = once

    def __call__(self, parser, namespace, values, option_string=None):  # noqa: ANN001 - argparse's signature
        seen = f"_{self.dest}_seen"
        first = getattr(namespace, seen, None)
        if first is not None:
            first, second = _as_given(first), _as_given(values)
            once = f"{self.once}: {option_string} {first},{second}" if self.once == LIST_ONCE else self.once
            raise argparse.ArgumentError(self, f"given twice ({first!r} and {second!r}); {once}")
        setattr(namespace, seen, values)
        setattr(namespace, self.dest, values)


def _as_given(value: object) -> str:
    """An option's parsed value as the command line wrote it (a parsed list comma-separated again)."""
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def model_recipe(args: argparse.Namespace) -> str | Path:
    """What to load: the --recipe file, or the --model name; both at once are refused (the recipe names its own
    model, so one of them would be ignored)."""
    if args.recipe is not None and args.model_given:
        from dreamlab.errors import DreamlabError

        raise DreamlabError(f"give --model or --recipe, not both: the recipe {str(args.recipe)!r} names its own "
                            f"model (its builder)")
    return args.recipe or args.model


def add_positional_model(p: argparse.ArgumentParser, help_text: str, layer_follows: bool = False) -> None:
    """MODEL (optional) and --recipe FILE, for the commands whose model is positional; `positional_model(args)`
    reads them. `layer_follows`: a positional LAYER comes next (kernels, features, examples); such a parser reads
    its options anywhere, between MODEL and LAYER too (cli parses it with argparse's intermixed parsing)."""
    p.add_argument("model", nargs="?", type=nonempty, help=f"{help_text} (or --recipe FILE instead)")
    # render and dream take --model: the same habit works here, so either spelling is accepted
    p.add_argument("--model", "-m", dest="model_option", type=nonempty, metavar="MODEL",
                   help="the model as an option, instead of MODEL first")
    p.set_defaults(layer_follows=layer_follows)
    p.intermixed = layer_follows  # type: ignore[attr-defined]
    p.add_argument("--recipe", type=input_path, help="a recipe TOML file, instead of MODEL (the file names its model)")
    add_allow_code_argument(p)


def add_model_layer_photo(p: argparse.ArgumentParser, layer_help: str, once: str) -> None:
    """MODEL LAYER --image PHOTO [--weights W], the arguments of the commands that look at one photo at a layer
    (features, grid, groups); `once` says why a second --image is refused."""
    add_positional_model(p, "recipe name, recipe .toml or torchvision model name", layer_follows=True)
    p.add_argument("layer", help=f"{layer_help} (`dreamlab layers MODEL` lists them)")
    add_once_option(p, "--image", "-i", type=photo_path, required=True, once=f"{once}: run it once per photo",
                    help="a PNG/JPEG path, or china / flower (scikit-learn's sample photos, offline); one per run")
    p.add_argument("--weights", default="default", type=nonempty,
                   help="'default' (the recipe's), 'none' (random init), a torchvision weights name, or PATH")


def add_photo_size(p: argparse.ArgumentParser) -> None:
    """--photo-size N of the photo views that read a photo larger for a finer map (grid, groups)."""
    p.add_argument("--photo-size", type=positive_int, metavar="N",
                   help="the photo's shorter side as the model sees it, before the centre square is cut (default: "
                        "the recipe's input size; larger: a finer map)")


def add_batch_render(p: argparse.ArgumentParser) -> None:
    """--steps and --lr of the photo views that render in one batch (grid, groups, invert)."""
    p.add_argument("--steps", type=positive_int, help="render steps (default: the recipe's)")
    p.add_argument("--lr", type=float, help="learning rate, above 0 up to 1000 (default: the recipe's)")


def add_photo_out(p: argparse.ArgumentParser, kind: str, beside: str = "") -> None:
    """-o FILE.png of the photo views, named MODEL_LAYER_PHOTO_KIND.png by default (`photo_output`)."""
    p.add_argument("-o", "--out", type=output_path,
                   help=f"output PNG (default: MODEL_LAYER_PHOTO_{kind}.png, PHOTO the image's name without "
                        f"suffix){beside}" + REPLACED)


def positional_model(args: argparse.Namespace) -> str | Path:
    """MODEL or the --recipe file: exactly one of them (the recipe names its own model, so one would be ignored)."""
    from dreamlab.errors import DreamlabError

    if args.model_option is not None:
        if args.model is not None:
            raise DreamlabError(f"give the model once: MODEL {args.model!r} and --model {args.model_option!r} were both "
                                f"given")
        args.model = args.model_option
    if args.model is not None and args.recipe is not None:
        raise DreamlabError(f"give MODEL or --recipe, not both: the recipe {str(args.recipe)!r} names its own model "
                            f"(its builder); MODEL also takes a recipe .toml")
    if args.model is None and args.recipe is None:
        layer = getattr(args, "layer", None) if getattr(args, "layer_follows", False) else None
        if layer is not None:  # one word: argparse gives it to LAYER, but the model is what comes first
            raise DreamlabError(f"give MODEL and LAYER (e.g. lenet-digits conv1), got only {layer!r}; "
                                f"`dreamlab layers MODEL` lists a model's layers")
        raise DreamlabError(f"name a model: MODEL ({recipe_names()}, a torchvision model name or a recipe .toml), "
                            f"--model MODEL, or --recipe FILE")
    return args.recipe if args.recipe is not None else args.model


def add_alpha_arguments(p: argparse.ArgumentParser, note: str = "") -> None:
    """--alpha and --alpha-weight, shared by render and gallery (settings.check_alpha checks the values)."""
    p.add_argument("--alpha", action="store_true", help="a transparent render (lucid's alpha; --param pixel or "
                   "fourier): RGBA PNGs, opaque where the unit needs it (each step shows the model the image over "
                   f"random noise, and penalizes opacity){note}")
    p.add_argument("--alpha-weight", type=float, metavar="W", help="with --alpha: the transparency penalty "
                   "relative to each image's score, 0 to 100 (default: 1; higher: more transparent)")


def add_device_argument(p: argparse.ArgumentParser, default_note: str = "") -> None:
    """--device, shared by the commands that run a model (devices.resolve_device checks the value)."""
    p.add_argument("--device", help=f"cpu, cuda or cuda:N (default: cuda when available{default_note})")


def add_compile_argument(p: argparse.ArgumentParser, when: str) -> None:
    """--compile [MODE], shared by render, gallery and bench; `when` says when it pays off for the command."""
    from dreamlab.optvis.choices import COMPILE_MODES

    p.add_argument("--compile", nargs="?", const="default", metavar="MODE", choices=COMPILE_MODES,
                   help=f"torch.compile each step's forward; MODE: {', '.join(COMPILE_MODES)} (reduce-overhead: "
                        f"CUDA graphs). The warm-up is paid once per model, layers and shape in a process: {when}")


def add_optimization_arguments(p: argparse.ArgumentParser) -> None:
    """--lr, --optimizer, --fourier-decay, --param and --transforms, shared by render and gallery (each None when
    left out: the recipe's); RenderSettings checks the values and `check_fourier_decay` the pairing."""
    p.add_argument("--lr", type=float, help="learning rate, above 0 up to 1000 (default: the recipe's)")
    p.add_argument("--optimizer",
                   help="channel-adam or adam (default: the recipe's; see dreamlab/optvis/optimizers.py)")
    p.add_argument("--fourier-decay", type=float, metavar="D",
                   help="the Fourier spectrum's 1/f^D scale, 0 to 4 (default: the recipe's, e.g. 0.5; lucid: "
                        "--optimizer adam --fourier-decay 1)")
    p.add_argument("--param", help="image parameterization: pixel, fourier or maco (a fixed natural Fourier "
                                   "magnitude, only the phase optimized; default: the recipe's)")
    p.add_argument("--transforms", help="transform preset: standard, small, jitter, none (default: the recipe's)")


def check_fourier_decay(fourier_decay: float | None, param: object) -> None:
    """--fourier-decay is refused with a parameterization other than fourier (`param`: the one the render uses)."""
    from dreamlab.errors import DreamlabError

    if fourier_decay is not None and param != "fourier":
        raise DreamlabError("--fourier-decay applies to the Fourier parameterization only; add --param fourier "
                            "or leave it out")


def add_diversity_arguments(p: argparse.ArgumentParser, layer_option: bool = True, note: str = "") -> None:
    """--diversity N and --diversity-weight W (and --diversity-layer LAYER with `layer_option`), shared by render
    and gallery (`note` ends --diversity's help); `check_diversity_options` refuses the last two without it."""
    p.add_argument("--diversity", type=positive_int, metavar="N",
                   help="N images per unit, pushed apart so that they show different things the unit responds to "
                        f"(Olah et al. 2017: the Gram matrices of their activations are made to differ{note})")
    p.add_argument("--diversity-weight", type=float, metavar="W",
                   help="how hard the images are pushed apart, relative to each image's score (default: 1; 0: "
                        "they differ by their random start only)")
    if layer_option:
        p.add_argument("--diversity-layer", metavar="LAYER",
                       help="the layer whose Gram matrices are compared (default: the objective's layer, or the "
                            "recipe's default layer for a logit)")


def check_diversity_options(args: argparse.Namespace) -> None:
    """--diversity out of its range (before a label per image is made: 10**9 of them would take minutes), and the
    options that tune it without it (they would be ignored), are refused."""
    from dreamlab.errors import DreamlabError, check_range
    from dreamlab.optvis.settings import MAX_DIVERSITY

    check_range("diversity", args.diversity or 1, 1, MAX_DIVERSITY, "images per unit")  # as render() tells it
    if (args.diversity or 1) > 1:
        return
    unused = given_options(args, [n for n in ("diversity_weight", "diversity_layer") if hasattr(args, n)])
    if unused:
        raise DreamlabError(f"{', '.join(unused)} appl{'ies' if len(unused) == 1 else 'y'} to several images per "
                            f"unit: add --diversity N (N >= 2), or leave {'it' if len(unused) == 1 else 'them'} out")


@functools.cache
def recipe_names() -> str:
    """The shipped recipes' names, comma-separated, for help texts (read once: every parser's help uses it)."""
    from dreamlab.models.recipe import shipped_recipe_names

    return ", ".join(shipped_recipe_names())


def add_allow_code_argument(p: argparse.ArgumentParser) -> None:
    """--allow-recipe-code: the explicit opt-in for recipes whose builder is arbitrary code (cli.main reads it)."""
    p.add_argument("--allow-recipe-code", action="store_true",
                   help="let the recipe's builder be any module:function, which RUNS THAT MODULE'S CODE (only for "
                        "recipes you trust; same as DREAMLAB_ALLOW_RECIPE_CODE=1)")


def warn_never_on(labels: Sequence[str], how: str) -> None:
    """One stderr line naming the units that were never on (`how`: "stayed at 0 for all 256 steps"): their images
    show nothing they respond to, which a grey picture alone does not say."""
    if not labels:
        return
    names = ", ".join(labels[:8]) + (f" and {len(labels) - 8} more" if len(labels) > 8 else "")
    one = len(labels) == 1
    print(f"dreamlab: note: {names} {how}: no image the optimizer reached turned {'it' if one else 'them'} on, so "
          f"{'its image shows' if one else 'their images show'} nothing {'it responds' if one else 'they respond'} "
          f"to", file=sys.stderr)


def note_zero_head(model, layers: Iterable[str]) -> None:
    """The stderr line of zero_head_note, where a target that reads the model's output stayed flat because the
    model's head is all zero (random-weight ViT)."""
    from dreamlab.models.zero_head import zero_head_note

    note = zero_head_note(model, layers)
    if note is not None:
        print(note, file=sys.stderr)


def phase(what: str) -> None:
    """One line per phase on stderr when it is not a terminal (a terminal gets the progress bar), so a long run
    in a log or a pipe is not silent."""
    if not sys.stderr.isatty():
        print(f"dreamlab: {what}", file=sys.stderr, flush=True)

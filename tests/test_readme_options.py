"""README.md is true to the command line: every option of every subcommand is named where README describes that
command, and every example command line in README's code blocks parses with the real parser. Parsers only: no
model is loaded, so this stays fast."""
from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from dreamlab.apps.cli import COMMANDS, _parse, build_parser

README = (Path(__file__).parent.parent / "README.md").read_text()


def _between(start: str, end: str) -> str:
    """README's text from the first `start` to the first `end` after it."""
    begin = README.index(start)
    return README[begin:README.index(end, begin + len(start))]


def _bullet(command: str) -> str:
    """The bullet `- `dreamlab COMMAND ...` up to the next bullet or heading."""
    match = re.search(rf"^- `dreamlab {command}\b.*?(?=^- |^#)", README, re.S | re.M)
    assert match, f"README has no bullet for `dreamlab {command}`"
    return match[0]


def _section(command: str) -> str:
    """Where README describes `command`: its own part, with the paragraph under `## Other commands` on the
    arguments that several commands share, and the bullet on `--tensorboard` for the commands that take it."""
    shared = _between("## Other commands", "- `dreamlab layers")
    tensorboard = _between("- `--tensorboard DIR` on", "- From Python") if command in ("render", "gallery",
                                                                                      "dream") else ""
    own = {
        "render": _between("## Render a unit", "## Other commands"),
        "cam": _between("## Where the model looks", "## Look inside a model"),
        "attribute": _between("## Where the model looks", "## Look inside a model"),
        "dream": _between("## DeepDream on photos", "## Python API"),
    }.get(command) or _bullet(command)
    return own + shared + tensorboard


def _options(command: str) -> list[str]:
    parser = build_parser([command]).chosen
    return [flag for action in parser._actions if not isinstance(action, argparse._HelpAction)
            for flag in action.option_strings]


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_option_is_named_where_readme_describes_the_command(command):
    text = _section(command)
    missing = [flag for flag in _options(command) if not re.search(re.escape(flag) + r"(?![\w-])", text)]
    assert not missing, f"README's part on `dreamlab {command}` does not name {missing}"


def _example_lines() -> list[str]:
    """The `dreamlab COMMAND ...` lines of README's ```bash / ```sh blocks, comments and `&& ...` cut off."""
    lines = []
    for block in re.findall(r"```(?:bash|sh)\n(.*?)```", README, re.S):
        for line in block.splitlines():
            if line.startswith("dreamlab "):
                lines.append(line)
    return lines


def test_readme_has_example_command_lines():
    assert len(_example_lines()) >= 15
    assert {line.split()[1] for line in _example_lines()} >= {"render", "cam", "attribute", "graph", "kernels",
                                                             "features", "examples", "dream"}


@pytest.mark.parametrize("line", _example_lines())
def test_readme_example_parses(line):
    argv = shlex.split(line, comments=True)
    if "&&" in argv:
        argv = argv[:argv.index("&&")]
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            args = _parse(argv[1:])
        except SystemExit as exc:
            pytest.fail(f"{line!r} does not parse (exit {exc.code}): {err.getvalue().strip()}")
    assert args.command == argv[1]


def test_readme_recipe_example_loads_and_applies_its_layer_table(tmp_path):
    """The ```toml block under README's Recipes is a recipe that loads, with its names and [layers."logit"]."""
    from dreamlab import load_model
    from dreamlab.models.recipe import load_recipe

    blocks = re.findall(r"```toml\n(.*?)```", _between("## Recipes", "## Tests"), re.S)
    assert len(blocks) == 1
    path = tmp_path / "my-resnet18.toml"
    path.write_text(blocks[0])
    recipe = load_recipe(path)
    assert recipe.name == "my-resnet18" and recipe.builder_kwargs == {"num_classes": 10}
    assert recipe.for_layers(["logit"]).lr == 0.1 and recipe.for_layers(["layer3"]).lr == recipe.lr
    loaded = load_model(path)
    assert loaded.weights == "none" and loaded.model.fc.out_features == 10 and loaded.categories[3] == "cat"

"""Every `>>>` example in dreamlab's docstrings runs and prints what it shows (doctest), offline, in a temporary
folder. Examples may use `torch`, `dreamlab` and `o` (dreamlab.objectives) without importing them, as README's
snippets do; an example on hed-vgg16 is skipped while its weights are not in the cache, and one marked
`doctest: +SKIP` (minutes of rendering, or a file it cannot make here) is not run."""
from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest
import torch

import dreamlab
from dreamlab import objectives
from dreamlab.models.zoo import hed

pytestmark = pytest.mark.usefixtures("one_thread")


def _modules_with_examples() -> list[str]:
    names = ["dreamlab"] + [m.name for m in pkgutil.walk_packages(dreamlab.__path__, "dreamlab.")
                            if not m.name.endswith("__main__")]  # __main__ runs the CLI when imported
    return [name for name in names if ">>>" in _source(name)]


def _source(name: str) -> str:
    spec = importlib.util.find_spec(name)
    return Path(spec.origin).read_text() if spec and spec.origin and spec.origin.endswith(".py") else ""


def test_the_package_has_examples():
    assert len(_modules_with_examples()) >= 30


@pytest.mark.parametrize("name", _modules_with_examples())
def test_docstring_examples_run_as_shown(name, tmp_path, monkeypatch):
    examples = [line for line in _source(name).splitlines() if line.lstrip().startswith(">>>")]
    if any('"hed-vgg16"' in line for line in examples) and not hed.weights_path().is_file():
        pytest.skip(f"hed-vgg16 weights not in the cache ({hed.weights_path()}): run `dreamlab fetch hed-vgg16`")
    monkeypatch.chdir(tmp_path)  # examples that save a file write it here
    module = importlib.import_module(name)
    result = doctest.testmod(module, extraglobs={"torch": torch, "dreamlab": dreamlab, "o": objectives},
                             optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, report=True)
    assert result.attempted > 0 or all("doctest: +SKIP" in line for line in examples)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (printed above)"

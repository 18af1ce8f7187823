"""Shared fixtures. Every test runs offline: any attempt to open a network connection fails the test."""
from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch


class NetworkAccessError(ConnectionRefusedError):
    """What a connection attempt gets in tests: an OSError, like a real offline machine gives."""


@pytest.fixture(autouse=True)
def no_network(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """Refuse connections and name lookups and fail the test that tried, unless it is marked `offline_attempt`
    (tests of the offline error path). Torch's download cache points at an empty folder."""
    attempts: list[str] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(repr(args[1:] or args)[:200])
        raise NetworkAccessError("network access is disabled in tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch_home")))
    yield attempts
    if attempts and request.node.get_closest_marker("offline_attempt") is None:
        pytest.fail(f"test tried to reach the network: {attempts[0]}")


@pytest.fixture(autouse=True)
def seeded() -> None:
    """torch's global generator starts every test from one seed: a random-weight net a test builds is the same on
    every run and in any test order, so a test cannot pass or warn by the luck of the draw."""
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """For modules of tiny renders (`pytestmark = pytest.mark.usefixtures("one_thread")`): one torch thread
    is faster there, several times so on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def chromium():
    """A headless Chromium for page tests; skips where none is installed (.ci/run installs Debian's)."""
    from browser import Chromium, find_chromium

    binary = find_chromium()
    if binary is None:
        pytest.skip("chromium not installed: apt-get install chromium (.ci/run installs it)")
    with Chromium(binary) as browser:
        yield browser


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of scikit-learn's two sample photos as PNGs (dataset examples for the gallery's --examples)."""
    from dreamlab.io import sample_photo, save_png

    folder = tmp_path_factory.mktemp("photos")
    for name in ("china", "flower"):
        save_png(sample_photo(name, "test"), folder / f"{name}.png")
    return folder


@pytest.fixture
def named_recipe(tmp_path: Path) -> Path:
    """A recipe file of lenet-digits whose classes are named "zero" to "nine"."""
    from models_fixtures import named_digits_recipe

    return named_digits_recipe(tmp_path / "named.toml")

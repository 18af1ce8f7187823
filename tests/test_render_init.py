"""A render that starts from a photo (`--init`, `init_image=`): paths and sample names are read as `dream` reads
them, and the provenance names the photo with the sha256 of its file, or of its pixels for a sample or a tensor."""
from __future__ import annotations

import hashlib

import pytest
import torch

import dreamlab
from dreamlab.apps.cli import main
from dreamlab.errors import DreamlabError
from dreamlab.io import PIXELS, pixel_digest, read_png_text, sample_photo, save_png

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = dict(steps=2, device="cpu")


def init_keys(provenance: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in provenance.items() if k.startswith("dreamlab:init")}


@pytest.fixture()
def photo_file(tmp_path):
    return save_png(torch.rand(3, 40, 56, generator=torch.Generator().manual_seed(0)), tmp_path / "photo.png")


def test_the_api_reads_a_path_as_the_same_pixels_as_a_tensor_and_records_the_file(photo_file) -> None:
    by_path = dreamlab.render("lenet-digits", "conv2:3", init_image=str(photo_file), **FAST)
    by_tensor = dreamlab.render("lenet-digits", "conv2:3", init_image=dreamlab.io.load_image(photo_file), **FAST)
    assert torch.equal(by_path.images, by_tensor.images)
    assert init_keys(by_path.provenance) == {
        "dreamlab:init": str(photo_file), "dreamlab:init_sha256_of": "file",
        "dreamlab:init_sha256": hashlib.sha256(photo_file.read_bytes()).hexdigest()[:16]}
    tensor_keys = init_keys(by_tensor.provenance)
    assert tensor_keys["dreamlab:init"] == "tensor" and tensor_keys["dreamlab:init_sha256_of"] == PIXELS
    assert tensor_keys["dreamlab:init_sha256"] == pixel_digest(dreamlab.io.load_image(photo_file))


def test_a_render_from_noise_records_no_start_image() -> None:
    assert init_keys(dreamlab.render("lenet-digits", "conv2:3", **FAST).provenance) == {}


def test_the_cli_takes_a_sample_photo_by_name_and_records_its_pixels(tmp_path, capsys) -> None:
    pytest.importorskip("sklearn")
    out = tmp_path / "start.png"
    assert main(["render", "conv2:3", "--model", "lenet-digits", "--init", "flower", "--steps", "2",
                 "-o", str(out)]) == 0
    assert init_keys(read_png_text(out)) == {
        "dreamlab:init": "flower", "dreamlab:init_sha256_of": PIXELS,
        "dreamlab:init_sha256": pixel_digest(sample_photo("flower", "the test"))}


def test_the_cli_records_the_init_file_as_given(photo_file, tmp_path) -> None:
    out = tmp_path / "start.png"
    assert main(["render", "conv2:3", "--model", "lenet-digits", "--init", str(photo_file), "--steps", "2",
                 "-o", str(out)]) == 0
    text = read_png_text(out)
    assert text["dreamlab:init"] == str(photo_file) and text["dreamlab:init_sha256_of"] == "file"


def test_a_missing_init_photo_is_one_line_before_the_model_loads(tmp_path, capsys, monkeypatch) -> None:
    import dreamlab.models.loading as loading

    def no_load(*args, **kwargs):
        raise AssertionError("the model was loaded before the photo was read")

    monkeypatch.setattr(loading, "load_model", no_load)
    code = main(["render", "conv2:3", "--model", "lenet-digits", "--init", str(tmp_path / "nothere.png")])
    err = capsys.readouterr().err.strip()
    assert code != 0 and "\n" not in err
    assert err.startswith("dreamlab: error: cannot read --init image") and "no such file" in err
    assert "china, flower" in err
    with pytest.raises(DreamlabError, match="cannot read init_image 'nothere.png': no such file"):
        dreamlab.render("lenet-digits", "conv2:3", init_image="nothere.png", **FAST)


def test_a_black_start_image_is_not_pinned_where_the_sigmoid_is_flat() -> None:
    """At a margin of 1e-3 a black --init sat at logit -6.9 and its pixels hardly moved (hed-vgg16's
    features.22:3 scored 6 after 64 steps from black, 68 from grey); at 0.02 it scores 26."""
    from dreamlab.optvis.params import INIT_MARGIN, make_param

    for name in ("pixel", "fourier"):
        param = make_param(name, 1, 3, (16, 16), device="cpu")
        dreamlab.optvis.params.image_to_param_raw(torch.zeros(1, 3, 16, 16), param)
        assert torch.allclose(param(), torch.full((1, 3, 16, 16), INIT_MARGIN), atol=1e-4), name


@pytest.mark.parametrize("param", ["pixel", "fourier"])
def test_an_init_sd_given_with_a_start_image_is_refused(photo_file, param) -> None:
    # the start image replaces the whole random start, so the spread was silently ignored
    with pytest.raises(DreamlabError) as refused:
        dreamlab.render("lenet-digits", "conv2:3", param=param, init_image=str(photo_file), init_sd=0.1, **FAST)
    assert str(refused.value) == ("init_sd=0.1 is the spread of the random start, and init_image starts from the "
                                  "image instead: leave init_sd out, or init_image out for a random start")
    # either alone renders
    assert dreamlab.render("lenet-digits", "conv2:3", param=param, init_sd=0.1, **FAST).provenance["dreamlab:sd"] \
        == "0.1"
    assert "dreamlab:init" in dreamlab.render("lenet-digits", "conv2:3", param=param, init_image=str(photo_file),
                                              **FAST).provenance


def test_init_image_with_a_param_of_ones_own_names_the_three_that_take_it():
    from dreamlab.optvis.params import PixelParam

    with pytest.raises(DreamlabError, match=r"^init_image works with the named parameterizations \(param='pixel', "
                                            r"'fourier' or 'maco'\), not a module or factory of your own"):
        dreamlab.render("lenet-digits", "conv2:0", steps=1, device="cpu",
                        param=lambda: PixelParam(1, 1, 28, 28), init_image=torch.rand(1, 28, 28))

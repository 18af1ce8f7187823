"""dreamlab.io: what check_image and load_image say about values outside [0, 1]."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dreamlab.errors import DreamlabError
from dreamlab.io import check_image, load_image


def _image(low: float, high: float) -> torch.Tensor:
    """A [3, 8, 8] float32 image whose min is `low` and max is `high`."""
    image = torch.linspace(0.25, 0.75, 3 * 8 * 8).view(3, 8, 8)
    image[0, 0, 0], image[2, 7, 7] = low, high
    return image


CLAMP = ("clamp them with .clamp(0, 1) if a resize or a blend overshot; if the image was normalized with a mean "
         "and std, give it from before that (dreamlab normalizes for the model)")


@pytest.mark.parametrize("image, text", [
    # before: "values from 0.0006591 to 1, outside [0, 1]": the rounding hid the value that was outside
    (_image(0.0006591, 1 + 1e-6), "photo has values from 0.0006591 to 1.000001, outside [0, 1] (the max 1.000001 is "
                                  f"above 1); {CLAMP}"),
    (_image(-1e-7, 0.9), f"photo has values from -1e-07 to 0.9, outside [0, 1] (the min -1e-07 is below 0); {CLAMP}"),
    (_image(-0.5, 1.5), "photo has values from -0.5 to 1.5, outside [0, 1] (the min -0.5 is below 0 and the max 1.5 "
                        f"is above 1); {CLAMP}"),
    (torch.linspace(0, 255, 3 * 8 * 8).view(3, 8, 8),
     "photo has values from 0 to 255, outside [0, 1] (the max 255 is above 1); they look like 0-255 values: divide "
     "them by 255"),
])
def test_values_outside_0_1_are_named_with_enough_digits_to_show_it(image, text):
    with pytest.raises(DreamlabError) as refused:
        check_image(image, "photo")
    assert str(refused.value) == text


DIVIDE = "they look like 0-255 values: divide them by 255"
SCALE = "scale them into [0, 1], e.g. (x - x.min()) / (x.max() - x.min())"


@pytest.mark.parametrize("image, advice", [
    (_image(0, 1) * 3, SCALE),  # a [0, 1] image scaled by 3 is not 0-255 data
    (_image(0, 1) * 300, SCALE),  # nor are values past 255
    (_image(0, 1) * 9.5, SCALE),
    (_image(0.5, 1) * 30.5, DIVIDE),  # a resized 0-255 photo: past what a [0, 1] image is scaled to by mistake
    (torch.tensor([0.0, 3.0, 7.0]).repeat(3, 4, 1), DIVIDE),  # whole numbers: a dark 0-255 photo
    (torch.tensor([0.0, 2.0]).repeat(3, 4, 1), CLAMP),  # within 2 of [0, 1]: an overshoot, as before
    (_image(-2.1, 2.6), CLAMP),  # a mean/std-normalized image, as before
    (_image(-1, 200), CLAMP),
])
def test_the_0_255_hint_is_given_only_to_values_that_look_like_it(image, advice):
    with pytest.raises(DreamlabError) as refused:
        check_image(image, "photo")
    message = str(refused.value)
    assert message.startswith("photo has values from ") and message.split("); ", 1)[1] == advice, message


def test_float64_values_a_hair_outside_still_show_it():
    image = _image(0.5, 1.0).double()
    image[1, 1, 1] = 1 + 2 ** -20  # a float32 value, so the float32 check sees it
    with pytest.raises(DreamlabError, match=r"the max 1\.000001 is above 1"):
        check_image(image)


def test_values_at_the_bounds_pass_unchanged():
    image = _image(0.0, 1.0)
    assert check_image(image) is image


def test_a_float_tiff_a_hair_above_1_shows_it(tmp_path: Path):
    """Before, ':g' printed its max 1.00000095 as 1: 'values from 0 to 1, outside [0, 1]'."""
    path = tmp_path / "scan.tiff"
    ramp = np.linspace(0, 1, 28 * 28, dtype=np.float32).reshape(28, 28)
    ramp[-1, -1] = np.float32(1 + 1e-6)
    Image.fromarray(ramp, mode="F").save(path)
    with pytest.raises(DreamlabError) as refused:
        load_image(path)
    assert "is a floating-point image with values from 0 to 1.000001, outside [0, 1]; scale it" in str(refused.value)


def test_a_file_this_user_may_not_read_is_told_so(tmp_path, monkeypatch):
    """A locked photo was told 'Permission denied; give a PNG or JPEG file', and a locked .pt direction file as
    'corrupt, truncated or not a PyTorch file' (the tests run as root, where chmod 000 does not bite: the
    PermissionError is raised by hand)."""
    import dreamlab.io
    from dreamlab.io import load_vectors, read_photo

    def locked(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    photo, vectors = tmp_path / "p.png", tmp_path / "v.pt"
    Image.new("RGB", (8, 8)).save(photo)
    torch.save(torch.ones(3), vectors)
    monkeypatch.setattr(Image, "open", locked)
    monkeypatch.setattr(dreamlab.io, "_read_vectors", locked)
    with pytest.raises(DreamlabError) as refused:
        read_photo(str(photo), "photo")
    assert str(refused.value) == f"cannot read photo {str(photo)!r}: permission denied; give a file you can read " \
                                 f"(chmod u+r)"
    with pytest.raises(DreamlabError) as refused:
        load_vectors(vectors)
    assert str(refused.value) == f"cannot read directions from {str(vectors)!r}: permission denied; give a file you " \
                                 f"can read (chmod u+r)"

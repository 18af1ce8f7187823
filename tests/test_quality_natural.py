"""The natural-image measure on the real hed-vgg16 weights (issue #12): the recipe's renders of two
`features.22` units pass it and every negative control fails it. Skipped when the weights cache is empty
(.ci/run fills it with `dreamlab fetch hed-vgg16`); about two minutes on a 2-core CPU."""
from __future__ import annotations

import pytest
import torch

from dreamlab import render
from dreamlab.models.loading import load_model
from dreamlab.models.zoo import hed
from dreamlab.optvis.objectives import channel

pytestmark = [pytest.mark.slow]

LAYER, UNITS = "features.22", [2, 3]


@pytest.fixture(scope="module")
def scored():
    """(score(images) -> items, the recipe's renders of UNITS, the model, the units' best photo crops), set up once."""
    if not hed.weights_path().is_file():
        pytest.skip(f"hed-vgg16 weights not in the cache ({hed.weights_path()}): run `dreamlab fetch hed-vgg16`")
    pytest.importorskip("sklearn")
    from dreamlab.apps.quality.natural import channel_means, photo_crops, score_natural

    loaded = load_model("hed-vgg16")
    recipe = loaded.recipe
    crops = photo_crops()
    best, best_index = channel_means(loaded.model, crops, [LAYER], recipe.mean, recipe.std)[LAYER][:, UNITS].max(0)

    def score(images: torch.Tensor, **options) -> list[dict]:
        return score_natural(loaded.model, images, LAYER, UNITS, best, recipe.mean, recipe.std, recipe.fill,
                             **options)

    return score, render(loaded, channel(LAYER, UNITS), seed=0).images, loaded, crops[best_index]


def test_the_recipes_renders_pass(scored) -> None:
    score, good, *_ = scored
    items = score(good)
    assert all(it["passed"] for it in items), items
    # renders are super-stimuli: many times the best photo crop (at seed 0: 17x and 61x)
    assert all(it["ratio"] > 5 and it["kept"] >= 0.55 for it in items), items


def test_every_negative_control_fails(scored) -> None:
    score, good, loaded, _ = scored
    objective = channel(LAYER, UNITS)
    controls = {
        # beats the photos too (unit 3's render drives unit 2 to 5x its best crop), loses to unit 2's own render
        "another unit's render": good.flip(0),
        "noise": torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(0)),
        "one step": render(loaded, objective, steps=1, seed=0).images,
        "minimized": render(loaded, -objective, steps=32, seed=0).images,
    }
    for name, images in controls.items():
        items = score(images)
        assert not any(it["passed"] for it in items), (name, items)
    rivals = score(controls["another unit's render"])
    assert all(it["rendered"] > it["best_crop"] and it["rendered"] < it["rival"] for it in rivals), rivals
    # the image slots are swapped: unit 2's own render sits in unit 3's slot, and is named so
    assert [it["rival_unit"] for it in rivals] == ["features.22:3", "features.22:2"]


def test_adversarial_style_renders_beat_the_photos_but_keep_far_less(scored) -> None:
    score, good, loaded, _ = scored
    adversarial = render(loaded, channel(LAYER, UNITS), seed=0, param="pixel", transforms="none",
                         decorrelate=False).images
    items, reference = score(adversarial), score(good)
    assert all(it["ratio"] > 10 and not it["passed"] for it in items), items  # kept 0.24, 0.19 at seed 0
    assert all(a["kept"] < 0.4 and a["kept"] < r["kept"] - 0.2 for a, r in zip(items, reference)), items


def test_the_best_photo_crops_tie_the_photos_and_what_they_keep_is_reported(scored) -> None:
    """Scored as renders, the best crops tie the photos (the crops are the reference); what they keep under the
    perturbations is reported beside each render as `crop_kept`."""
    score, good, _, best_crops = scored
    as_renders = score(best_crops)
    assert all(it["ratio"] == pytest.approx(1, abs=1e-3) for it in as_renders), as_renders
    items = score(good, best_crops=best_crops)
    for item, crop in zip(items, as_renders):
        assert item["crop_kept"] == pytest.approx(crop["kept"], abs=1e-3) and 0 < item["crop_kept"] < 1

"""cam and attribute: where their outputs go by default, and a layer they cannot read."""
from __future__ import annotations

from dreamlab.attribution.photos import default_output


def test_default_names_keep_a_product_and_a_quotient_of_targets_apart():
    assert default_output("lenet-digits", "logit:3*logit:4", "gradcam").name == \
        "lenet-digits_logit_3_x_logit_4_gradcam.png"
    assert default_output("lenet-digits", "logit:3/logit:4", "gradcam").name == \
        "lenet-digits_logit_3_over_logit_4_gradcam.png"
    assert default_output("googlenet", "logit:281", "saliency", "inception4c").name == \
        "googlenet_logit_281_inception4c_saliency.png"


def test_gradcam_at_a_container_the_forward_loops_over_names_its_modules():
    import pytest
    import torch
    from torch import nn

    import dreamlab
    from dreamlab.errors import DreamlabError

    class Looped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = nn.ModuleList([nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)])
            self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for block in self.blocks:
                x = block(x)
            return self.head(x)

    with pytest.raises(DreamlabError, match=r"layer 'blocks' is never called: .* \(blocks\.0, blocks\.1;"):
        dreamlab.gradcam(Looped().eval(), torch.rand(3, 16, 16), 0, "blocks")

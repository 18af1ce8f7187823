"""cam and attribute: where their outputs go by default."""
from __future__ import annotations

from dreamlab.attribution.photos import default_output


def test_default_names_keep_a_product_and_a_quotient_of_targets_apart():
    assert default_output("lenet-digits", "logit:3*logit:4", "gradcam").name == \
        "lenet-digits_logit_3_x_logit_4_gradcam.png"
    assert default_output("lenet-digits", "logit:3/logit:4", "gradcam").name == \
        "lenet-digits_logit_3_over_logit_4_gradcam.png"
    assert default_output("googlenet", "logit:281", "saliency", "inception4c").name == \
        "googlenet_logit_281_inception4c_saliency.png"

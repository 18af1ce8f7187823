"""Where the model looks: Grad-CAM and gradient attributions (saliency, SmoothGrad, integrated gradients,
deconvnet, guided backpropagation), with the model-randomization sanity check."""

from dreamlab.attribution.api import METHODS, attribute, gradcam  # noqa: E402,F401

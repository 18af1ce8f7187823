"""An independent judge for the transfer measure (issue #12): a kernel machine that never saw lenet-digits' data.

lenet-digits (and the second CNN, `digits_judge`) were trained on the 1347 training images of scikit-learn's
digits. This judge is of another family, a support-vector machine with an RBF kernel (scikit-learn's `SVC`, C=10,
gamma 'scale', the first setting tried, not tuned against renders), and it is fitted only on the 450 held-out
images that no digits model was trained on. It reads images at the data's native 8x8 resolution (the 28-px
images are bilinear upsamplings of 8x8 scans), area-pooled. Its accuracy is measured on the 1347 training images,
which it never saw: 98.1%.

>>> judge = DigitsSvmJudge.fit()
>>> judge.predict(torch.zeros(1, 1, 28, 28)).shape
(1,)
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch.nn.functional as F
from torch import Tensor

from dreamlab.errors import DreamlabError

NATIVE_SIZE = 8  # scikit-learn's digits are 8x8 scans


def judge_features(images: Tensor) -> np.ndarray:
    """[N, 1, H, W] images in [0, 1] -> [N, 64]: area-pooled to the data's native 8x8."""
    return F.adaptive_avg_pool2d(images.detach().float().cpu(), NATIVE_SIZE).flatten(1).numpy()


@dataclass(frozen=True)
class DigitsSvmJudge:
    """An RBF support-vector machine fitted on the held-out digits; `accuracy` on the images it never saw."""

    classifier: Any
    accuracy: float
    fitted_on: int

    @staticmethod
    @functools.cache
    def fit() -> DigitsSvmJudge:
        """Fit once per process (a fraction of a second); deterministic."""
        try:
            from sklearn.svm import SVC
        except ImportError:
            raise DreamlabError("the transfer measure needs scikit-learn: pip install 'dreamlab[digits]'") from None
        from dreamlab.models.zoo.digits import load_digits_split

        x_seen, y_seen, x_held_out, y_held_out = load_digits_split()
        classifier = SVC(C=10.0, gamma="scale").fit(judge_features(x_held_out), y_held_out.numpy())
        accuracy = float((classifier.predict(judge_features(x_seen)) == y_seen.numpy()).mean())
        return DigitsSvmJudge(classifier, accuracy, len(x_held_out))

    def predict(self, images: Tensor) -> np.ndarray:
        """The digit read in each image [N, 1, H, W] in [0, 1]."""
        return self.classifier.predict(judge_features(images))


__all__ = ["DigitsSvmJudge", "judge_features", "NATIVE_SIZE"]

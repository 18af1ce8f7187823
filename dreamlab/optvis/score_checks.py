"""Scores that break during an optimization, told in one line (shared by render and dream): a score with no
gradient, and NaN or infinity, watched on the device without a host sync per step."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from dreamlab.errors import DreamlabError


def no_gradient(name: str) -> DreamlabError:
    """The one line for an objective whose score does not depend on the image (render's and dream's)."""
    return DreamlabError(f"the score of {name!r} does not depend on the image (it has no gradient): the objective "
                         f"or the model's forward cuts the gradient with .detach(), .item(), torch.no_grad() or an "
                         f"integer op; remove that cut")


def non_finite_error(subject: str, place: str, stopped: str, first: str = "", inputs: str = "") -> DreamlabError:
    """The one line for a score or gradient that became NaN or infinite, as render and dream say it: `subject`
    ("the score of 'x'"), `place` ("at step 12", "in octave 2 of 4"), what stopped and what is kept (`stopped`), a fix
    to try first (`first`: a lower lr) and an input to check beside the objective and the weights (`inputs`)."""
    check = "the objective (a division by ~0?)" + (f", the weights and {inputs}" if inputs else " and the weights")
    return DreamlabError(f"{subject} became NaN or infinite {place}, so {stopped}; "
                         f"{f'{first}, or check' if first else 'check'} {check}")


class NonFinite:
    """Watches a batch's scores for NaN/inf on the device (no host sync per step) and stops the render with the
    unit and the first bad step when it is read (at snapshots and at the end of the batch)."""

    def __init__(self, units: Sequence[int], labels: Sequence[str], factory_lr: bool = False):
        self.units, self.labels = list(units), labels
        self.factory_lr = factory_lr  # an optimizer factory sets the learning rate, not the lr setting
        self.first_bad: Tensor | None = None  # per unit: the first step whose score was not finite, 0 if none

    def record(self, score: Tensor, step: int) -> None:
        """Note, on the device, the step at which each unit's score first became NaN or infinite."""
        bad = ~torch.isfinite(score.detach())
        if self.first_bad is None:
            self.first_bad = torch.zeros(score.shape, dtype=torch.long, device=score.device)
        self.first_bad = torch.where(bad & (self.first_bad == 0), step, self.first_bad)

    def check_scores(self, scores: Tensor, step: int) -> None:
        """Stop at once when `scores` (the start image's, read on the host) hold NaN/inf. Keeps no state, so
        the per-step record lives on the device of the step scores, whatever device these came from."""
        bad = ~torch.isfinite(scores.detach())
        if bool(bad.any()):
            self._stop(int(bad.nonzero()[0, 0]), step if step else -1)  # -1: the start image

    def raise_if_any(self) -> None:
        """Stop the render, naming the first unit and step whose score was NaN or infinite (one host read)."""
        if self.first_bad is None:
            return
        found = self.first_bad.cpu()
        if bool((found != 0).any()):
            k = int((found != 0).nonzero()[0, 0])
            self._stop(k, int(found[k]))

    def _stop(self, k: int, step: int) -> None:
        what, stopped = f"the score of {self.labels[self.units[k]]}", "the render was stopped and nothing saved"
        if step < 0:  # no optimizer step has run: the learning rate cannot be the cause
            raise non_finite_error(what, "on the start image, before any optimizer step", stopped,
                                   inputs="init_image")
        lower = "lower the learning rate your optimizer factory sets" if self.factory_lr else "lower lr (--lr)"
        raise non_finite_error(what, f"at step {step}", stopped, first=lower)

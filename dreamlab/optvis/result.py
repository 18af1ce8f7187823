"""What a render returns: its images with their scores, history and provenance, and the ways to save or show
them (PNGs with provenance, a grid, PIL images, a numpy array, a notebook preview)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from dreamlab.errors import DreamlabError
from dreamlab.optvis.classes import as_logit, classes_text, logit_class


@dataclass
class RenderResult:
    """Rendered images [B, C, H, W] in [0, 1] (CPU), one per unit, with what produced them. A transparent
    render's (render(..., alpha=True); `has_alpha`) have one more channel, the last, the alpha: [B, 4, H, W]
    RGBA for a colour model."""

    images: Tensor
    labels: list[str]
    history: Tensor  # objective per step and unit, [steps, B], measured on the transformed images
    initial_scores: Tensor  # objective of each unit on its starting un-transformed image, [B]
    final_scores: Tensor  # objective of each unit on its final un-transformed image, [B]
    provenance: dict[str, str]
    snapshots: dict[int, Tensor] = field(default_factory=dict)  # step -> images, for the requested thresholds
    interrupted: bool = False  # Ctrl-C stopped the run early; images are the last state reached
    # each unit's gradient norm per step, [steps, B], over the parameterization's tensors, before the update
    grad_norms: Tensor = field(default_factory=lambda: torch.zeros(0, 0))
    # image i's place in the unit list of the objective in provenance['dreamlab:objective'], which decides its
    # start noise and transform draws: render(..., units=[unit_indices[i]]) with the same settings renders it
    # again (with diversity, a unit's images share its index; the label's '#k' says which copy)
    unit_indices: list[int] = field(default_factory=list)
    # the steps each image ran: `planned_steps` unless Ctrl-C cut its batch short (an interrupted render's
    # batches differ; provenance['dreamlab:steps'] and `history` hold the fewest)
    steps: list[int] = field(default_factory=list)
    planned_steps: int = 0
    # the model's class names (None: it has none), for `dreamlab:class(es)` of class logits
    categories: Sequence[str] | None = field(default=None, repr=False)
    # the module whose output is the model's (googlenet's fc): its units are classes too, as logit:N's are
    class_layer: str | None = None
    # per image, whether a non-zero gradient reached its parameters at some step (see no_gradient); empty: unknown
    gradient_reached: list[bool] = field(default_factory=list)

    @property
    def has_alpha(self) -> bool:
        """Whether the images end in an alpha channel (a transparent render: RGBA, or grey + alpha); their PNGs,
        grids and `pil()` images keep it, and `numpy()` gives it as the last channel."""
        return "dreamlab:alpha" in self.provenance

    @property
    def class_names(self) -> list[str | None]:
        """Each image's class name where its unit is a class logit of a model with class names (else None)."""
        return [logit_class(label, self.categories) for label in self._as_logits()]

    def _as_logits(self) -> list[str]:
        return [as_logit(label, self.class_layer) for label in self.labels]

    def unit_text(self, i: int) -> dict[str, str]:
        """The PNG text of image i on top of `provenance`: its unit, its place in the unit list, its score, its
        class (`dreamlab:class` for a class logit, `dreamlab:classes` for an expression of several); after a
        Ctrl-C also its own step count, and `dreamlab:interrupted` when it stopped before the planned steps."""
        text = {"dreamlab:unit": self.labels[i], "dreamlab:unit_index": str(self.unit_indices[i]),
                "dreamlab:score": f"{float(self.final_scores[i]):.6g}", **self._class_text(i)}
        if self.interrupted and self.steps:
            text["dreamlab:steps"] = str(self.steps[i])
            if self.steps[i] < self.planned_steps:
                text["dreamlab:interrupted"] = f"after {self.steps[i]} of {self.planned_steps} steps"
        return text

    def interruption_text(self) -> dict[str, str]:
        """`dreamlab:interrupted` (after how many of the planned steps) for a figure of all images that Ctrl-C
        cut short; empty for a finished render."""
        if not (self.interrupted and self.steps):
            return {}
        return {"dreamlab:interrupted": f"after {min(self.steps)} of {self.planned_steps} steps"}

    def grid_text(self) -> dict[str, str]:
        """The PNG text of a grid of all images on top of `provenance`: their units, places in the unit list and
        scores, in one order (and each image's step count after a Ctrl-C), and the class logits' names."""
        text = {"dreamlab:units": " | ".join(self.labels),
                "dreamlab:unit_indices": " | ".join(map(str, self.unit_indices))}
        if self.interrupted:
            text["dreamlab:steps"] = " | ".join(map(str, self.steps))
        return {**text, "dreamlab:scores": " | ".join(f"{v:.6g}" for v in self.final_scores.tolist()),
                **classes_text(self._as_logits(), self.categories)}

    def snapshot_text(self, i: int | None, step: int) -> dict[str, str]:
        """The PNG text of the --thresholds snapshot at `step` of image i (None: of the grid) on top of
        `provenance`, as `dreamlab render` writes it: the final image's text with the step in place of the score."""
        if i is None:
            return {**{k: v for k, v in self.grid_text().items() if k != "dreamlab:scores"},
                    "dreamlab:step": str(step)}
        return {"dreamlab:unit": self.labels[i], "dreamlab:unit_index": str(self.unit_indices[i]),
                **self._class_text(i), "dreamlab:step": str(step)}

    def _class_text(self, i: int) -> dict[str, str]:
        label = self._as_logits()[i]
        name = logit_class(label, self.categories)
        return {"dreamlab:class": name} if name else classes_text([label], self.categories)

    def save(self, path: str | Path, index: int | None = None, step: int | None = None) -> Path:
        """Write one PNG with the render's provenance, as `dreamlab render` does, and return its path: image
        `index` alone (render's file of that unit), or with index None the only image, or a grid of all of them
        (`dreamlab render --grid`'s file, a row per unit with diversity). `step` writes the snapshot kept at
        that step (`render(..., thresholds=[step])`; render's `NAME_step0064.png`) in place of the final image.
        One file a call: for a file per unit, give each its index.

        >>> result = dreamlab.render("lenet-digits", "conv2:0-3", steps=32, thresholds=[8])   # doctest: +SKIP
        >>> result.save("conv2.png"); result.save("conv2_3.png", index=3)                     # doctest: +SKIP
        >>> [result.save(f"conv2_{i}.png", index=i) for i in range(4)]                        # doctest: +SKIP
        >>> result.save("conv2_3_step0008.png", index=3, step=8)                              # doctest: +SKIP
        """
        from dreamlab.io import check_output_file, grid, save_png

        count = len(self.labels)
        if index is not None and (isinstance(index, bool) or not isinstance(index, int)
                                  or not -count <= index < count):
            raise DreamlabError(f"index must be an image's place, 0 to {count - 1}, or None (a grid of all {count}), "
                                f"got {index!r}")
        images = self._at_step(step)
        path = check_output_file(path)
        if index is None and count > 1:
            text = self.grid_text() if step is None else self.snapshot_text(None, step)
            return save_png(grid(images.detach().float().cpu(), self._row()), path, {**self.provenance, **text})
        i = 0 if index is None else index % count
        text = self.unit_text(i) if step is None else self.snapshot_text(i, step)
        return save_png(images[i], path, {**self.provenance, **text})

    def _at_step(self, step: int | None) -> Tensor:
        """The final images (step None), or the snapshot kept at `step`."""
        if step is None:
            return self.images
        if isinstance(step, bool) or not isinstance(step, int) or step not in self.snapshots:
            kept = ", ".join(map(str, sorted(self.snapshots))) or "none"
            raise DreamlabError(f"step must be a step with a snapshot in this result (kept: {kept}), got "
                                f"{step!r}; render(..., thresholds=[STEP]) keeps one (keep_snapshots=False "
                                f"leaves them to on_snapshot)")
        return self.snapshots[step]

    def _row(self) -> int | None:
        """Images per grid row: a unit's images with diversity (they share its index), else None (about square)."""
        copies = len(self.labels) // max(1, len(set(self.unit_indices)))
        return copies if copies > 1 else None

    def never_on(self) -> list[str]:
        """Labels of the units whose score was exactly 0 on the start image, at every step and at the end: a ReLU'd
        unit that no image the optimizer reached turned on (the redirected ReLU's first steps included), so its
        image shows nothing it responds to."""
        return [label for label, is_off in zip(self.labels, self.never_on_mask()) if is_off]

    def never_on_mask(self) -> list[bool]:
        """Per image, whether its score was exactly 0 at the start, at every step and at the end (see never_on)."""
        off = (self.initial_scores == 0) & (self.final_scores == 0)
        if self.history.numel():
            off &= (self.history == 0).all(0)
        return off.tolist()

    def no_gradient(self) -> list[str]:
        """Labels of the images whose parameters got a gradient of exactly 0 at every step, so the objective never
        changed them: each is its start image (a score made of .sign(), .round() or another step function, which
        has no gradient). The units of never_on() are left out: they are told as such. A parameterization whose
        tensors are not one per image (a user module's) is judged as a whole: listed only if none got a gradient."""
        off = self.never_on_mask()
        return [label for label, reached, is_off in zip(self.labels, self.gradient_reached, off)
                if not reached and not is_off]

    def pil(self) -> list[Image.Image]:
        """The images as PIL images (RGB, or L for one channel; RGBA or LA with an alpha channel)."""
        from dreamlab.io import to_pil

        return [to_pil(img) for img in self.images]

    def numpy(self, step: int | None = None) -> np.ndarray:
        """The images (`step`: the snapshot kept at that step) as one float32 array [B, H, W, C] in [0, 1]
        (channels last, as lucent's render_vis returns them, one such array per threshold; C is 1 for a grey
        model, and one more, the alpha last, for a transparent render)."""
        return self._at_step(step).detach().float().clamp(0, 1).permute(0, 2, 3, 1).contiguous().cpu().numpy()

    def grid(self, nrow: int | None = None, padding: int = 2, step: int | None = None) -> Image.Image:
        """All images (`step`: the snapshot kept at that step) tiled into one PIL image, `nrow` to a row (default:
        a unit's images with diversity, as `dreamlab render --grid`, else about square), on white. Transparent
        images keep their alpha (an RGBA image, which viewers show over their own checkerboard);
        `dreamlab.optvis.alpha.checkerboard(result.images)` lays them over lucid's grey one instead."""
        from dreamlab.io import grid, to_pil

        if nrow is not None and (isinstance(nrow, bool) or not isinstance(nrow, int) or nrow < 1):
            raise DreamlabError(f"nrow must be a whole number >= 1 (images per row) or None, got {nrow!r}")
        return to_pil(grid(self._at_step(step).detach().float().cpu(), nrow or self._row(), padding))

    PREVIEW_IMAGES = 64  # a notebook shows at most these in its preview (a whole 512-unit layer would be huge)

    def _repr_png_(self) -> bytes:
        """How Jupyter shows a result: the grid of its first PREVIEW_IMAGES images, as PNG."""
        from dreamlab.io import grid, png_bytes

        return png_bytes(grid(self.images[:self.PREVIEW_IMAGES].detach().float().cpu(), self._row()))

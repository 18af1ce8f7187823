"""Renders in TensorBoard: the objective and the gradient norm of each unit per step, images every N steps.

The step loop stays free of host syncs: the engine keeps the per-step values on the device (`RenderResult.history`
and `.grad_norms`, [steps, units]) and they are written here after the render. Images arrive through the
engine's snapshot callback at the steps `image_steps` lists.

>>> import dreamlab
>>> log = TensorBoardLog("runs/digit3")
>>> result = dreamlab.render("lenet-digits", "logit:3", steps=8, thresholds=image_steps(8),
...                          on_snapshot=log.on_snapshot)
>>> log.write_result(result); log.close()
>>> len(list(log.logdir.glob("events.out.tfevents.*")))
1
"""
from __future__ import annotations

import importlib.util
import re
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Self

from torch import Tensor

from dreamlab.errors import DreamlabError, DreamlabNote

INSTALL_HINT = "pip install 'dreamlab[tensorboard]' (or pip install tensorboard)"


def tag(label: str) -> str:
    """A TensorBoard tag for a unit label: 'inception4c:97' stays, spaces and odd characters become '_', and a
    --diversity image's number reads as its file name's ('conv2:3 #2' -> 'conv2:3_div2', not a unit 'conv2:3_2')."""
    label = re.sub(r" #(\d+)$", r" div\1", label)
    return re.sub(r"[^\w.:@,+-]+", "_", label).strip("_") or "unit"


def image_steps(steps: int, every: int | None = None) -> list[int]:
    """The steps whose images are logged: every `every` steps and the last; by default 8 images spread evenly
    over the run, the last step's included (all of them when the run is shorter).

    >>> image_steps(20), image_steps(20, every=8)
    ([2, 5, 8, 10, 12, 15, 18, 20], [8, 16, 20])
    """
    if every is None:
        return sorted({max(1, round(k * steps / 8)) for k in range(1, 9)})
    return sorted({*range(every, steps + 1, every), steps})


def fresh_run(logdir: str | Path) -> int | None:
    """The purge_step of a run that starts from step 1 (not a resume): 1 where `logdir` already holds event files
    (the same command run again), said in a note, so that TensorBoard shows this run in place of the earlier one
    rather than a second line over the same steps; None for a new folder."""
    folder = Path(logdir)
    if not folder.is_dir() or not any(folder.glob("events.out.tfevents.*")):
        return None
    warnings.warn(f"{str(folder)!r} holds an earlier run's TensorBoard events: TensorBoard shows this run in their "
                  f"place (a second run over the same steps would draw two lines per tag); give another folder to "
                  f"keep both", DreamlabNote)
    return 1


def require_tensorboard() -> None:
    """Refuse --tensorboard in one line where the tensorboard package is missing (before the model loads)."""
    if importlib.util.find_spec("tensorboard") is None:
        raise DreamlabError(f"--tensorboard needs the tensorboard package; {INSTALL_HINT}")


class TensorBoardLog:
    """One TensorBoard run folder; `prefix` separates several renders in one folder (the gallery's batches).
    `image_every`: log images every so many steps (default: 8 images over a render). `purge_step`: a resumed
    run's first step; TensorBoard then hides what the folder's earlier event files hold from that step on (the
    steps of the run that stopped, which this one logs again)."""

    def __init__(self, logdir: str | Path, prefix: str = "", image_every: int | None = None,
                 purge_step: int | None = None):
        require_tensorboard()
        self.logdir = Path(logdir)
        self.prefix = prefix
        self.image_every = image_every
        self.purge_step = purge_step
        self._writer: Any = None

    @property
    def writer(self) -> Any:
        """The SummaryWriter, made at the first write: a run refused or with nothing to do leaves no empty event
        file (TensorBoard would list it as a run)."""
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.logdir), purge_step=self.purge_step)
        return self._writer

    def _tag(self, kind: str, label: str) -> str:
        return f"{kind}/{self.prefix}{tag(label)}"

    def on_snapshot(self, step: int, images: Tensor, labels: Sequence[str]) -> None:
        """The engine's snapshot callback: one image per unit at this step."""
        for image, label in zip(images, labels):
            self.writer.add_image(self._tag("image", label), image.clamp(0, 1), global_step=step)

    def write_result(self, result: Any) -> None:
        """The objective and the gradient norm per unit per step (steps counted from 1), and the final scores."""
        for i, label in enumerate(result.labels):
            for name, values in (("objective", result.history), ("grad_norm", result.grad_norms)):
                if values.numel() == 0:
                    continue
                series = values[:, i].tolist()
                for step, value in enumerate(series, start=1):
                    self.writer.add_scalar(self._tag(name, label), value, global_step=step)
            self.writer.add_scalar(self._tag("final_score", label), float(result.final_scores[i]),
                                   global_step=int(result.history.shape[0]))
        if getattr(result, "interrupted", False) and result.history.shape[0] > 0:
            # the images where a stop left them: the last scheduled snapshot may be long before it
            self.on_snapshot(int(result.history.shape[0]), result.images, result.labels)
        self.writer.add_text(f"provenance/{self.prefix}".rstrip("/"),
                             "\n".join(f"    {k}: {v}" for k, v in result.provenance.items()))
        self.writer.flush()

    def close(self) -> None:
        """Flush and close the event file, if one was opened."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def with_snapshots(log: TensorBoardLog | None, steps: int, thresholds: Sequence[int],
                   on_snapshot: Callable[[int, Tensor, Sequence[str]], None] | None,
                   every: int | None = None) -> tuple[list[int], Callable[[int, Tensor, Sequence[str]], None] | None]:
    """The render's thresholds and snapshot callback, serving both the caller's snapshots and the log's images."""
    if log is None:
        return list(thresholds), on_snapshot
    logged, wanted = set(image_steps(steps, every or log.image_every)), set(thresholds)

    def callback(step: int, images: Tensor, labels: Sequence[str]) -> None:
        if step in logged:
            log.on_snapshot(step, images, labels)
        if on_snapshot is not None and step in wanted:
            on_snapshot(step, images, labels)

    return sorted(logged | wanted), callback


class DreamSteps:
    """`on_step` for `dreamlab.dream`: keeps each step's score on the device (no host sync per step) and logs the
    image every `every` steps and at the last; `finish` writes the scores as `objective/dream` (steps counted
    across octaves and frames from 1, after `done` steps of a resumed zoom's earlier frames) and closes the log.
    The dream loop normalizes each step by the mean |gradient| (its step size is fixed), so it has no gradient
    norm to log."""

    def __init__(self, log: TensorBoardLog, every: int, done: int = 0):
        self.log, self.every, self.done = log, max(1, every), done
        self.scores: list[Tensor] = []
        self.last: Tensor | None = None  # the latest step's image, until it is logged

    def __call__(self, step: Any) -> None:
        self.scores.append(step.score.detach().reshape(()))
        self.last = step.image
        if len(self.scores) % self.every == 0:
            self._log_image()

    def _log_image(self) -> None:
        if self.last is not None:
            # a gradient gone NaN is found at the octave's end, after its image was logged: black, not a warning
            image = self.last[0].detach().float().nan_to_num(0.0).clamp(0, 1).cpu()
            self.log.writer.add_image(f"image/{self.log.prefix}dream", image,
                                      global_step=self.done + len(self.scores))
            self.last = None

    def finish(self, provenance: dict[str, str] | None) -> None:
        """Write the scores, the last step's image where --tensorboard-every (or Ctrl-C) left it out, as render
        logs its last step, and the provenance (None for a dream that failed: the steps up to the failure show
        where it went wrong); close the log. A second call writes nothing."""
        import torch

        self._log_image()
        values = torch.stack(self.scores).float().cpu().tolist() if self.scores else []
        self.scores = []
        for i, value in enumerate(values, start=self.done + 1):
            self.log.writer.add_scalar(f"objective/{self.log.prefix}dream", value, global_step=i)
        if provenance is not None:
            self.log.writer.add_text("provenance", "\n".join(f"    {k}: {v}" for k, v in provenance.items()))
        self.log.close()

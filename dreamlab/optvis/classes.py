"""Class names of class-logit units: which units of a label are the model's classes, their names for a PNG's
text, and the layer whose output is the model's (googlenet's fc, whose units are classes too)."""
from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

import torch
from torch import nn

from dreamlab.models.prepare import FORWARD_ERRORS
from dreamlab.optvis.capture import OUTPUT, output_module

# a class logit in a unit's label: 'logit:281', also inside an expression ('logit:281 - logit:282'); not a layer
# whose name ends in 'logit' (my.logit:3), nor a range
LOGIT_IN_LABEL = re.compile(r"(?<![\w.-])logit:(\d+)(?![\d-])")


def as_logit(label: str, class_layer: str | None) -> str:
    """`label` with the units of `class_layer` (the module whose output is the model's) written as the class
    logits they are: 'fc:281' -> 'logit:281' for googlenet, to look up class names by."""
    if not class_layer or class_layer == "logit":
        return label
    return re.sub(rf"(?<![\w.-]){re.escape(class_layer)}:(\d+)(?![\d-])", r"logit:\1", label)


def classes_text(labels: Sequence[str], categories: Sequence[str] | None) -> dict[str, str]:
    """{'dreamlab:classes': '281=tabby | 282=tiger cat'}: the names of the class logits in `labels` (as `dreamlab
    examples` writes them), for a grid or an expression of several logits; {} without any named one."""
    found = dict.fromkeys(int(m[1]) for label in labels for m in LOGIT_IN_LABEL.finditer(label))
    names = [(index, logit_class(f"logit:{index}", categories)) for index in found]
    named = " | ".join(f"{index}={name}" for index, name in names if name is not None)
    return {"dreamlab:classes": named} if named else {}


def logit_class(label: str, categories: Sequence[str] | None) -> str | None:
    """The class name of a class logit's label ('logit:281' or a copy, 'logit:281 #2') where the model names its
    classes, and the name says more than the number (lenet-digits' '3' does not); else None."""
    found = re.fullmatch(r"logit:(\d+)(?: #\d+)?", label)
    if not found or not categories or int(found[1]) >= len(categories):
        return None
    name = str(categories[int(found[1])])
    return None if name == found[1] else name


# class_layer_of's answers inside class_layers_remembered(), by (id(model), layers, classes, channels, size), each
# with its model, which the reference keeps alive: no other model gets its id while the answer is remembered
_CLASS_LAYERS: ContextVar[dict[tuple, tuple[nn.Module, str | None]] | None] = \
    ContextVar("dreamlab_class_layers", default=None)


@contextmanager
def class_layers_remembered() -> Iterator[None]:
    """Within it, class_layer_of runs its forward once per question: `dreamlab render` names its files by the
    class layer before render() asks the same (on the same model; the device does not change the answer)."""
    token = _CLASS_LAYERS.set({})
    try:
        yield
    finally:
        _CLASS_LAYERS.reset(token)


def class_layer_of(model: nn.Module, layers: Iterable[str], categories: Sequence[str] | None, channels: int,
                   size: tuple[int, int], device: torch.device | str) -> str | None:
    """The layer among `layers` whose output is the model's own (googlenet's fc, whose units are its classes),
    found by one forward of a grey image where the model names its classes; else None."""
    wanted = [name for name in layers if name != OUTPUT]
    if not categories or not wanted:
        return None
    remembered = _CLASS_LAYERS.get()
    key = (id(model), tuple(wanted), tuple(categories), channels, tuple(size))
    if remembered is not None and key in remembered:
        return remembered[key][1]
    try:
        found = output_module(model, wanted, torch.full((1, channels, *size), 0.5, device=device))[0]
    except FORWARD_ERRORS:
        found = None
    if remembered is not None:
        remembered[key] = model, found
    return found

"""The weights cache of the models dreamlab does not ship ($DREAMLAB_CACHE, else ~/.cache/dreamlab)."""
from __future__ import annotations

import os
from pathlib import Path

from dreamlab.errors import WeightsError


def cache_dir() -> Path:
    """$DREAMLAB_CACHE, else ~/.cache/dreamlab."""
    return Path(os.environ.get("DREAMLAB_CACHE") or Path.home() / ".cache" / "dreamlab")


def check_cache_place(target: Path, model: str) -> None:
    """Refuse in one line a cache that no `dreamlab fetch MODEL` could fill: the cache folder (or a folder above
    it) is a file, or the weights file's name `target` is taken by a folder."""
    folder = cache_dir()
    named = "$DREAMLAB_CACHE" if os.environ.get("DREAMLAB_CACHE") else "the default cache folder"
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        why = "is a file, not a folder" if existing == folder else f"cannot be made: {str(existing)!r} is a file"
        raise WeightsError(f"the weights cache {str(folder)!r} ({named}) {why}; point DREAMLAB_CACHE at a folder "
                           f"(or unset it for ~/.cache/dreamlab), then run `dreamlab fetch {model}`")
    if target.exists() and not target.is_file():
        raise WeightsError(f"the {model} weights file {str(target)!r} is a folder; remove it (or point "
                           f"DREAMLAB_CACHE elsewhere), then run `dreamlab fetch {model}`")


__all__ = ["cache_dir", "check_cache_place"]

"""What a long run shows and how it takes Ctrl-C: a progress bar on a terminal or in a notebook (one line in a
log), and Ctrl-C deferred while finished work is being kept."""
from __future__ import annotations

import signal
import sys
import threading
from typing import Any


class DeferredSigint:
    """Inside `with DeferredSigint() as d:` Ctrl-C (SIGINT) does not raise: it sets `d.hit`, and the previous
    handler is back on exit. So a second Ctrl-C cannot cut off finishing a render or writing its files. Off the
    main thread, where handlers cannot be set, it does nothing."""

    def __init__(self) -> None:
        self.hit = False
        self._previous: Any = None
        self._active = False

    def _record(self, signum: int, frame: object) -> None:
        self.hit = True

    def __enter__(self) -> DeferredSigint:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._record)
            self._active = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._active:
            signal.signal(signal.SIGINT, signal.SIG_DFL if self._previous is None else self._previous)
            self._active = False


def progress_bar(total: int, what: str = ""):
    """A tqdm bar on a terminal or in a Jupyter kernel (its widget bar, or tqdm's text bar without ipywidgets);
    elsewhere (a log, a pipe) the line `dreamlab: <what>`, so a run is not silent. Called once the inputs are
    checked, so a bad input still gets its error as the only line."""
    in_notebook = _in_notebook()
    if not sys.stderr.isatty() and not in_notebook:
        if what:
            print(f"dreamlab: {what}", file=sys.stderr, flush=True)
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    options = dict(total=total, unit="img-step", unit_scale=True, leave=False)
    if in_notebook:
        try:
            from tqdm import notebook
        except ImportError:
            notebook = None
        # without ipywidgets, tqdm.notebook has no widget (IProgress) and its bar fails as it is made: the text bar
        if getattr(notebook, "IProgress", None) is not None:
            return notebook.tqdm(**options)
    return tqdm(**options)


def _in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (notebook, lab, VS Code, Colab), where stderr is no terminal but
    shows a bar. Only an IPython that is already imported is asked: none is imported here."""
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    try:
        shell = get_ipython() if callable(get_ipython) else None
    except Exception:  # an IPython in a strange state: no bar rather than an error
        return False
    return getattr(shell, "kernel", None) is not None

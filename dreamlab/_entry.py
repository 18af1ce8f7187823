"""The console entry point: Ctrl-C at any moment, import time included, exits 130 without a traceback.

`dreamlab/__init__.py` imports torch (a second or more), so the guard has to sit outside the package's imports:
this module imports nothing of dreamlab at module level.
"""
from __future__ import annotations

import os
import sys

EXIT_INTERRUPTED = 130


def main() -> int:
    try:
        from dreamlab.apps.cli import main as cli_main

        return cli_main()
    except KeyboardInterrupt:
        print("dreamlab: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        _quiet_broken_pipe()


def _quiet_broken_pipe() -> None:
    """Flush stdout now; if the reader left (`dreamlab recipes | head -3`), point stdout at devnull so the
    interpreter's own flush at exit does not print 'Exception ignored ... BrokenPipeError'."""
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())

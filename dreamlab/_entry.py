"""The console entry point: Ctrl-C at any moment, import time included, exits 130 without a traceback.

Importing torch takes a second or more, so the guard has to sit outside the package's imports: this module
imports nothing of dreamlab at module level, and imports torch itself, holding Ctrl-C until it is loaded.
"""
from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable

EXIT_INTERRUPTED = 130


def main() -> int:
    try:
        cli_main = _import_holding_ctrl_c(_import_cli)
        return cli_main()
    except KeyboardInterrupt:
        print("dreamlab: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        _quiet_broken_pipe()


TORCH_FREE = ("recipes",)  # commands that never import torch: they, --help and --version stay fast
HELP = {"-h", "--help", "--version"}


def _import_cli() -> Callable[[], int]:
    """The CLI's main, with torch imported first when the command will need it."""
    from dreamlab.apps.cli import COMMANDS, main as cli_main

    argv = sys.argv[1:]
    if argv and argv[0] in COMMANDS and argv[0] not in TORCH_FREE and not HELP & set(argv):
        import torch  # noqa: F401  here, where a Ctrl-C cannot be lost (see _import_holding_ctrl_c)
    return cli_main


def _import_holding_ctrl_c(do_import: Callable[[], Callable[[], int]]) -> Callable[[], int]:
    """Run `do_import` with Ctrl-C noted rather than raised, and raise it once the import is done.

    torch's C initialization imports numpy and clears any error that import raises, a KeyboardInterrupt
    included, so a Ctrl-C landing there would be lost and the command would run on.
    """
    pressed: list[int] = []
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # started with Ctrl-C ignored (nohup, `cmd &`)
        return do_import()
    try:
        previous = signal.signal(signal.SIGINT, lambda signum, frame: pressed.append(signum))
    except ValueError:  # not the main thread: signals cannot be handled here anyway
        return do_import()
    try:
        result = do_import()
    finally:
        signal.signal(signal.SIGINT, previous)
    if pressed:
        raise KeyboardInterrupt
    return result


def _quiet_broken_pipe() -> None:
    """Flush stdout now; if the reader left (`dreamlab recipes | head -3`), point stdout at devnull so the
    interpreter's own flush at exit does not print 'Exception ignored ... BrokenPipeError'."""
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())

"""How a `feature-platform` process ends: Python's exit work, then `os._exit`, never the C runtime's teardown.

pyarrow's and DuckDB's thread pools are C++ objects that the C runtime destroys after Python has finished. A
worker still winding down at that moment (just after a dataset scan, say) makes `std::thread`'s destructor call
`std::terminate`: the process aborts with SIGABRT ("terminate called without an active exception") after the
command has done all its work and printed its result (apache/arrow#34314 and #39862, duckdb/duckdb#13904; seen
here under load, about 1 run in 10 of `feature-platform demo`). Scripts and CI judge a command by its exit status,
so a finished command must not be reported as crashed.

`run` therefore registers `_end` with `atexit` before anything else: handlers run last-in, first-out, so every
library's own exit handler (registered when the library was imported, later) runs first, then `_end` shuts down
logging, flushes the standard streams and leaves with `os._exit` and the command's status. The C runtime's
static destructors, where the abort happens, are never reached; neither are C-level `atexit` handlers, which no
library we use needs (files are closed and databases committed by the code that opened them).
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
from collections.abc import Callable

_INTERRUPTED = 130  # the shell's status for a command stopped by SIGINT (128 + 2)


class _Status:
    # Until the command returns, whatever escapes it (an unexpected exception) ends the process with 1.
    code = 1


def _end() -> None:
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more can reach it
            pass
    os._exit(_Status.code)


def _exit_code(code: object) -> int:
    """The status `sys.exit(code)` gives the process: None is 0, an int itself, anything else (a message) 1."""
    if code is None:
        return 0
    return code if isinstance(code, int) else 1


def run(main: Callable[[], int]) -> None:
    """Run a command's `main` and end the process with its status (see the module's docstring)."""
    atexit.register(_end)
    try:
        _Status.code = main()
    except SystemExit as exc:  # argparse's --help (0) and usage errors (2)
        _Status.code = _exit_code(exc.code)
        raise
    except KeyboardInterrupt:
        _Status.code = _INTERRUPTED
        raise
    sys.exit(_Status.code)


__all__ = ["run"]

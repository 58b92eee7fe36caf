"""How a `feature-platform` process ends: Python's exit work, then `os._exit`, never the C runtime's teardown.

Native libraries (pyarrow's and DuckDB's thread pools) may still be working when the interpreter exits. A core
dump of `feature-platform demo` showed one such case: an Arrow I/O thread, finishing a Parquet read-ahead, released
a buffer owned by a Python object; its destructor asked for the GIL, the exiting interpreter ended the thread
instead, and that forced unwind through a C++ destructor called `std::terminate`. The process aborted (SIGABRT,
"terminate called without an active exception") after the command had done all its work and printed its result,
about 1 run in 10 under load (apache/arrow#34314 and #39862, duckdb/duckdb#13904 are of the same kind). That
case's cause is gone (`util/parquet_files.py`); this module closes the class: scripts and CI judge a command by
its exit status, so a finished command must not be reported as crashed by a library's teardown.

`run` therefore registers `_end` with `atexit` before anything else: handlers run last-in, first-out, so every
library's own exit handler (registered when the library was imported, later) runs first, then `_end` shuts down
logging, flushes the standard streams and leaves with `os._exit` and the command's status. Python runs `atexit`
handlers before it starts finalizing, so neither the finalization (where a native thread asking for the GIL is
ended, as above) nor the C runtime's static destructors are reached; nor are C-level `atexit` handlers, which no
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

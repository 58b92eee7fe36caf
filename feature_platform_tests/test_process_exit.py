"""A finished command's process ends with the command's status even when a native library's teardown would abort it
(feature_platform/cli/process_exit.py). The teardown that aborts is stood in for by `abort` registered with the C
runtime's `__cxa_atexit`, where C++ static destructors (Arrow's and DuckDB's thread pools) run: deterministic,
where the real race shows about once in ten loaded runs."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest

PROBE = textwrap.dedent("""
    import atexit, ctypes, sys
    from feature_platform.cli.process_exit import run

    libc = ctypes.CDLL(None)
    libc.__cxa_atexit.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    libc.__cxa_atexit(ctypes.cast(libc.abort, ctypes.c_void_p), None, None)  # a teardown that aborts

    def main():
        # What a library imported by the command does: its own exit handler, registered after `run` started.
        atexit.register(lambda: sys.stderr.write("library exit handler ran\\n"))
        sys.stdout.write("result, not yet flushed")
        {body}

    {ending}
""")


def _probe(body: str, ending: str = "run(main)") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PROBE.format(body=body, ending=ending)], capture_output=True,
                          text=True, timeout=60)


def test_the_stand_in_teardown_aborts_a_plain_exit():
    """Without `run`, the same finished command is reported as crashed: the stand-in is the failure `run` prevents."""
    done = _probe("return 0", ending="sys.exit(main())")
    assert done.returncode == -signal.SIGABRT
    assert done.stdout == "result, not yet flushed"


@pytest.mark.parametrize(("body", "status"), [("return 0", 0), ("return 3", 3), ("raise SystemExit(2)", 2),
                                              ("raise SystemExit(None)", 0), ("raise SystemExit('bad usage')", 1),
                                              ("raise RuntimeError('boom')", 1), ("raise KeyboardInterrupt", 130)])
def test_the_process_ends_with_the_commands_status_after_every_exit_handler(body, status):
    done = _probe(body)
    assert done.returncode == status, done.stderr
    assert done.stdout == "result, not yet flushed"  # buffered output is flushed, not lost
    assert "library exit handler ran" in done.stderr  # the libraries' own exit work still runs
    if "RuntimeError" in body:
        assert "RuntimeError: boom" in done.stderr  # an unexpected failure still shows its traceback


def test_the_command_line_ends_through_it():
    """`python -m feature_platform.cli` and the `feature-platform` script: a usage error is 2, `--help` 0."""
    usage = subprocess.run([sys.executable, "-m", "feature_platform.cli", "no-such-command"], capture_output=True,
                           text=True, timeout=60)
    assert usage.returncode == 2 and "invalid choice" in usage.stderr
    helped = subprocess.run([sys.executable, "-m", "feature_platform.cli", "--help"], capture_output=True,
                            text=True, timeout=60)
    assert helped.returncode == 0 and "feature-platform" in helped.stdout
    from importlib.metadata import entry_points

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "feature-platform"]
    assert script.value == "feature_platform.cli:entry_point"

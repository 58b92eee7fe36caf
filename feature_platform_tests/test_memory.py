"""The process's memory plumbing (feature_platform/util/memory.py): once the package is imported, Arrow allocates
through the same allocator as numpy and pandas, in this process and the processes it starts, unless the
environment chose Arrow's allocator itself or pyarrow was loaded first."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

BACKEND = "import pyarrow as pa; print(pa.default_memory_pool().backend_name)"


def _run(code: str, **env) -> list[str]:
    environment = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"} | env
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=environment, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_arrows_own_default_is_another_allocator():
    """Without the package, Arrow allocates through its own pool: what the package changes is observable."""
    assert _run(BACKEND) != ["system"]


def test_importing_the_package_makes_the_system_allocator_arrows_default():
    assert _run(f"import feature_platform; {BACKEND}") == ["system"]


def test_a_process_the_platform_starts_inherits_it():
    """Dagster's run workers are processes the platform's process starts: they allocate the same way."""
    assert _run(f"""
        import subprocess, sys
        import feature_platform
        print(subprocess.run([sys.executable, "-c", {BACKEND!r}], capture_output=True, text=True).stdout)
    """) == ["system"]


@pytest.mark.parametrize("chosen", ["mimalloc", "system"])
def test_an_allocator_the_environment_chose_is_kept(chosen):
    assert _run(f"import feature_platform; {BACKEND}", ARROW_DEFAULT_MEMORY_POOL=chosen) == [chosen]


def test_after_pyarrow_is_loaded_nothing_is_changed():
    """Arrow read its setting when it was loaded: setting it now would change nothing in this process, and only the
    processes it starts would differ from it, so the package leaves it alone."""
    assert _run(f"""
        import os, pyarrow
        import feature_platform
        print(os.environ.get("ARROW_DEFAULT_MEMORY_POOL", "unset"))
        {BACKEND}
    """) == ["unset", _run(BACKEND)[0]]

"""The process's memory plumbing (feature_platform/util/memory.py): once the package is imported, Arrow allocates
through the same allocator as numpy and pandas, in this process and the processes it starts, unless the
environment chose Arrow's allocator itself or pyarrow was loaded first; and glibc maps every large block on its
own, unless the environment set its threshold."""

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


# glibc's own account of its memory: `hblkhd` is the bytes held in blocks mapped on their own.
MAPPED_ON_ITS_OWN = """
    import ctypes
    class Info(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                         "fsmblks", "uordblks", "fordblks", "keepcost")]
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype, libc.malloc.restype, libc.free.argtypes = Info, ctypes.c_void_p, [ctypes.c_void_p]
    libc.free(libc.malloc(20 << 20))  # a large block freed: glibc's own threshold rises to its size
    before = libc.mallinfo2().hblkhd
    block = libc.malloc(8 << 20)
    print(libc.mallinfo2().hblkhd - before >= 8 << 20)
"""


def _mapped(prelude: str = "", **env) -> bool:
    environment = {k: v for k, v in os.environ.items() if k not in ("MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES")}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(prelude) + textwrap.dedent(MAPPED_ON_ITS_OWN)],
                          capture_output=True, text=True, env=environment | env, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.split() == ["True"]


def test_without_the_package_a_large_block_comes_from_the_heap_once_a_larger_one_was_freed():
    """glibc's moving threshold: what the package changes is observable."""
    assert not _mapped()


def test_importing_the_package_maps_every_large_block_on_its_own():
    """Freed, it goes back to the system at once: a range run's arrays do not leave holes in the heap."""
    assert _mapped("import feature_platform\n")


@pytest.mark.parametrize("env", [{"MALLOC_MMAP_THRESHOLD_": str(32 << 20)},
                                 {"GLIBC_TUNABLES": f"glibc.malloc.mmap_threshold={32 << 20}"}])
def test_a_threshold_the_environment_chose_is_kept(env):
    assert not _mapped("import feature_platform\n", **env)

"""The process's memory plumbing (feature_platform/util/memory.py): Arrow allocates through the same allocator as
numpy and pandas once a deployment's runtime exists, unless the environment chose Arrow's allocator itself."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

PROBE = textwrap.dedent("""
    import pyarrow as pa
    from pathlib import Path
    from feature_platform.config import Settings
    from feature_platform.runtime import runtime_for

    before = pa.array(range(1000))  # allocated by the pool in use before the runtime
    print(pa.default_memory_pool().backend_name)
    runtime_for(Settings.from_env({"FEATURE_PLATFORM_HOME": str(Path(HOME))}))
    print(pa.default_memory_pool().backend_name)
    after = pa.array(range(1000))
    print(before.sum().as_py() == after.sum().as_py() == 499500)
""")


def _backends(tmp_path, **env) -> list[str]:
    environment = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"} | env
    done = subprocess.run([sys.executable, "-c", PROBE.replace("HOME", repr(str(tmp_path)))], capture_output=True, text=True,
                          env=environment, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_a_runtime_makes_the_system_allocator_arrows_default(tmp_path):
    before, after, intact = _backends(tmp_path)
    assert before != "system"  # Arrow's own pool (mimalloc or jemalloc) until the runtime exists
    assert after == "system"
    assert intact == "True"  # buffers made by the previous pool stay valid


@pytest.mark.parametrize("chosen", ["mimalloc", "system"])
def test_an_allocator_the_environment_chose_is_kept(tmp_path, chosen):
    before, after, intact = _backends(tmp_path, ARROW_DEFAULT_MEMORY_POOL=chosen)
    assert before == after == chosen
    assert intact == "True"

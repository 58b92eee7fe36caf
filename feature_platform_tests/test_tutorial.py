"""Every code block of docs/add-a-feature-view.md and of docs/own-data.md runs as written, in order.

Block kinds (the pages explain them to their reader):
- ```python file=<path>  a file to create: written to <path> in the working directory;
- ```bash                commands, run with `bash -eu -o pipefail` from the working directory;
- ```python              a script, run with the virtualenv's python from the working directory;
- ```text                expected output of the block before it: the first word of each of its lines must
                         appear in that block's output, unless it is a number or a date (those differ
                         from run to run).
Any other kind fails the test, so nothing on a page is silently skipped.

The tutorial runs in a copy of the repository: the files of the working tree (tracked and untracked, not
ignored), a `.venv` link to this interpreter's environment and PYTHONPATH at the copy, so the new spec module is
imported from the copy (as the reader's editable install would import it from their clone) and the repository
itself is never changed. "Bring your own data" runs in an empty directory with the virtualenv's bin first on
PATH (an activated virtualenv), its blocks as in one terminal: what a bash block exports, the next blocks see;
its PostgreSQL database gets a name of this run's (SHOP_DB) and is dropped afterwards.
FEATURE_PLATFORM_* variables are removed, so the pages run on the embedded defaults, as a reader's shell would.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from feature_platform.config import Settings
from feature_platform_tests.helpers import require

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "docs" / "add-a-feature-view.md"
OWN_DATA = ROOT / "docs" / "own-data.md"
VARYING = re.compile(r"[\d.,:+-]+")  # numbers, dates, times
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```[ \t]*$", re.M | re.S)


@dataclass
class Block:
    kind: str  # python | bash | text
    code: str
    file: str | None = None


def blocks(markdown: str) -> list[Block]:
    found = []
    for info, code in FENCE.findall(markdown):
        kind, *attrs = info.split()
        options = dict(a.split("=", 1) for a in attrs)
        found.append(Block(kind, code, options.get("file")))
    return found


@pytest.mark.parametrize("page, files", [(TUTORIAL, 2), (OWN_DATA, 4)], ids=["tutorial", "own-data"])
def test_the_page_uses_only_known_block_kinds(page, files):
    found = blocks(page.read_text())
    assert [b.kind for b in found if b.kind not in ("python", "bash", "text")] == []
    assert all(b.kind == "python" for b in found if b.file)
    assert found[0].kind != "text"
    assert not any(a.kind == b.kind == "text" for a, b in zip(found, found[1:]))
    assert sum(b.kind == "bash" for b in found) >= 3 and sum(b.file is not None for b in found) == files


def run_page(page: Path, cwd: Path, env: dict[str, str], scripts: Path, *, python: Path, may_overwrite: bool = False,
             carry_exports: bool = False) -> None:
    """Run the page's blocks in order from `cwd`, checking each `text` block against the output before it.
    With `carry_exports`, the environment a bash block ends with is the next blocks' (one terminal)."""
    previous_output = None
    exported = scripts / "exported.env"
    for i, block in enumerate(blocks(page.read_text())):
        where = f"{page.name} block {i} ({block.kind}{' file=' + block.file if block.file else ''})"
        if block.file:
            if not may_overwrite:
                assert not (cwd / block.file).exists(), f"{where} would overwrite a file of the repository"
            (cwd / block.file).parent.mkdir(parents=True, exist_ok=True)
            (cwd / block.file).write_text(block.code)
            previous_output = None
            continue
        if block.kind == "text":
            assert previous_output is not None, f"{where}: expected output must follow a command or script"
            words = [line.split()[0] for line in block.code.splitlines() if line.strip()]
            missing = [w for w in words if not VARYING.fullmatch(w) and w not in previous_output]
            assert missing == [], f"{where}: not in the output of the block before:\n{previous_output[-3000:]}"
            continue
        if block.kind == "bash":
            code = block.code + (f"\nenv -0 > {exported}\n" if carry_exports else "")
            command = ["bash", "-eu", "-o", "pipefail", "-c", code]
        else:
            script = scripts / f"block{i}.py"
            script.write_text(block.code)
            command = [str(python), str(script)]
        done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"{where} failed:\n{block.code}\n--- stdout\n{done.stdout[-3000:]}\n" \
                                     f"--- stderr\n{done.stderr[-5000:]}"
        if carry_exports and block.kind == "bash":
            env = dict(item.split("=", 1) for item in exported.read_text().split("\0") if "=" in item)
        previous_output = done.stdout


def copy_of_repository(dest: Path) -> Path:
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for rel in filter(None, listed):
        source = ROOT / rel
        if source.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / rel)
    (dest / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    return dest


def test_tutorial_runs_as_written(tmp_path):
    if not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout to copy the repository")
    repo = copy_of_repository(tmp_path / "repo")
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FEATURE_PLATFORM_", "DAGSTER_HOME"))}
    env["PYTHONPATH"] = str(repo)
    run_page(TUTORIAL, repo, env, scripts, python=repo / ".venv" / "bin" / "python")
    # what the page promised happened, in the copy and only there
    assert (repo / ".feature_platform" / "offline" / "user_tools_30d").is_dir()
    assert not (ROOT / "examples" / "chat_activity" / "user_tools_30d.py").exists()


@pytest.fixture
def shop_database():
    """The name of the database the page creates (and its own dropdb replaces), dropped afterwards."""
    admin = Settings.from_env({"FEATURE_PLATFORM_PROFILE": "services"}).pg_conninfo("postgres")
    require("PostgreSQL", lambda: psycopg.connect(admin).close())
    name = f"fp_own_data_{uuid.uuid4().hex[:10]}"
    yield name
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_own_data_page_runs_as_written(tmp_path, shop_database):
    work = tmp_path / "work"
    work.mkdir()
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    venv_bin = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FEATURE_PLATFORM_", "DAGSTER_HOME", "PYTHON"))}
    env |= {"PATH": f"{venv_bin}{os.pathsep}{env.get('PATH', '')}", "VIRTUAL_ENV": sys.prefix,
            "SHOP_DB": shop_database}
    run_page(OWN_DATA, work, env, scripts, python=venv_bin / "python", may_overwrite=True, carry_exports=True)
    # what the page promised happened, in its working directory
    offline = work / ".feature_platform" / "offline"
    assert (offline / "user_events_7d").is_dir() and (offline / "user_orders_30d").is_dir()
    assert (work / ".feature_platform" / "training_sets" / "will_buy_training_set" / "v1.parquet").is_file()

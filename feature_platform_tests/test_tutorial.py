"""Every code block of docs/add-a-feature-view.md runs as written, in order, in a copy of the repository.

Block kinds (the page explains them to its reader):
- ```python file=<path>  a file to create: written to <path> in the copy;
- ```bash                commands, run with `bash -eu -o pipefail` from the copy's root;
- ```python              a script, run with `.venv/bin/python` from the copy's root;
- ```text                expected output of the block before it: the first word of each of its lines must
                         appear in that block's output, unless it is a number or a date (those differ
                         from run to run).
Any other kind fails the test, so nothing on the page is silently skipped.

The copy gets the files of the working tree (tracked and untracked, not ignored), a `.venv` link to this
interpreter's environment and PYTHONPATH at the copy, so the new spec module is imported from the copy (as
the reader's editable install would import it from their clone) and the repository itself is never changed.
FEATURE_PLATFORM_* variables are removed, so the page runs on the embedded defaults, as a reader's shell would.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "docs" / "add-a-feature-view.md"
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


def test_the_page_uses_only_known_block_kinds():
    found = blocks(TUTORIAL.read_text())
    assert [b.kind for b in found if b.kind not in ("python", "bash", "text")] == []
    assert all(b.kind == "python" for b in found if b.file)
    assert found[0].kind != "text"
    assert not any(a.kind == b.kind == "text" for a, b in zip(found, found[1:]))
    assert sum(b.kind == "bash" for b in found) >= 3 and sum(b.file is not None for b in found) == 2


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
    previous_output = None
    for i, block in enumerate(blocks(TUTORIAL.read_text())):
        where = f"block {i} ({block.kind}{' file=' + block.file if block.file else ''})"
        if block.file:
            assert not (repo / block.file).exists(), f"{where} would overwrite a file of the repository"
            (repo / block.file).parent.mkdir(parents=True, exist_ok=True)
            (repo / block.file).write_text(block.code)
            previous_output = None
            continue
        if block.kind == "text":
            assert previous_output is not None, f"{where}: expected output must follow a command or script"
            words = [line.split()[0] for line in block.code.splitlines() if line.strip()]
            missing = [w for w in words if not VARYING.fullmatch(w) and w not in previous_output]
            assert missing == [], f"{where}: not in the output of the block before:\n{previous_output[-3000:]}"
            continue
        if block.kind == "bash":
            command = ["bash", "-eu", "-o", "pipefail", "-c", block.code]
        else:
            script = scripts / f"block{i}.py"
            script.write_text(block.code)
            command = [str(repo / ".venv" / "bin" / "python"), str(script)]
        done = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"{where} failed:\n{block.code}\n--- stdout\n{done.stdout[-3000:]}\n" \
                                     f"--- stderr\n{done.stderr[-5000:]}"
        previous_output = done.stdout
    # what the page promised happened, in the copy and only there
    assert (repo / ".feature_platform" / "offline" / "user_tools_30d").is_dir()
    assert not (ROOT / "examples" / "chat_activity" / "user_tools_30d.py").exists()

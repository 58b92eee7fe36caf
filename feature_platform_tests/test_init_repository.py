"""`feature-platform init DIR` scaffolds a feature repository that loads, that Dagster validates as a code location,
and whose own test passes; it refuses a directory with files in it and a name that cannot be a package."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from feature_platform.cli import main
from feature_platform.repo import load_repository

BIN = Path(sys.executable).parent


def run_init(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["init", *args])
    return code, out.getvalue(), err.getvalue()


def clean_env(home: Path) -> dict[str, str]:
    """A reader's shell: no FEATURE_PLATFORM_* or DAGSTER_HOME of the test run, the platform's home in tmp."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FEATURE_PLATFORM_", "DAGSTER_HOME"))}
    return {**env, "FEATURE_PLATFORM_HOME": str(home)}


@pytest.fixture
def scaffolded(tmp_path) -> Path:
    repo = tmp_path / f"features_{uuid.uuid4().hex[:8]}"  # a fresh package name: imported once in this process
    code, out, err = run_init(str(repo))
    assert (code, err) == (0, ""), err
    assert f"created feature repository {repo.name}" in out
    return repo


def test_the_scaffolded_repository_loads_with_its_source_entity_and_view(scaffolded):
    assert sorted(p.relative_to(scaffolded).as_posix() for p in scaffolded.rglob("*") if p.is_file()) == [
        "__init__.py", "definitions.py", "entities.py", "sources.py", "tests/test_user_events_7d.py",
        "user_events_7d.py", "workspace.yaml"]
    repo = load_repository(str(scaffolded))
    assert list(repo.sources) == ["events"] and repo.sources["events"].path == "data/events"
    assert list(repo.views) == ["user_events_7d"]
    assert repo.views["user_events_7d"].entity.dtype == "string"
    assert repo.directory == scaffolded.resolve()


def test_dagster_validates_the_scaffolded_workspace(scaffolded, tmp_path):
    done = subprocess.run([str(BIN / "dagster"), "definitions", "validate", "-w", str(scaffolded / "workspace.yaml")],
                          cwd=tmp_path, env=clean_env(tmp_path / "home"), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    assert f"Validation successful for code location {scaffolded.name}" in done.stdout + done.stderr


def test_the_example_repository_is_a_code_location_the_same_way(tmp_path):
    example = Path(__file__).resolve().parents[1] / "examples" / "chat_activity"
    assert "build_definitions(repo=Path(__file__).parent)" in (example / "definitions.py").read_text()
    done = subprocess.run([str(BIN / "dagster"), "definitions", "validate", "-w", str(example / "workspace.yaml")],
                          cwd=tmp_path, env=clean_env(tmp_path / "home"), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    assert "Validation successful for code location chat_activity" in done.stdout + done.stderr


def test_the_scaffolded_test_passes_under_pytest(scaffolded, tmp_path):
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=scaffolded,
                          env=clean_env(tmp_path / "home"), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-3000:]
    assert "1 passed" in done.stdout
    assert not (scaffolded / "data").exists()  # the test wrote its rows into a copy, not the repository


def test_init_refuses_a_directory_with_files_and_a_name_that_is_not_a_package(tmp_path):
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("mine")
    code, out, err = run_init(str(used))
    assert code == 1 and out == "" and err.startswith("error: init: ") and "not an empty directory" in err
    assert len(err.splitlines()) == 1 and [p.name for p in used.iterdir()] == ["notes.txt"]

    code, _, err = run_init(str(tmp_path / "my-features"))
    assert code == 1 and "must be a Python identifier" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "my-features").exists()

    code, _, err = run_init(str(tmp_path / "json"))  # would hide the standard library's json, or be hidden by it
    assert code == 1 and "already importable" in err and not (tmp_path / "json").exists()


def test_init_fills_an_empty_directory(tmp_path):
    empty = tmp_path / f"features_{uuid.uuid4().hex[:8]}"
    empty.mkdir()
    assert run_init(str(empty))[0] == 0
    assert (empty / "workspace.yaml").read_text().count(f"location_name: {empty.name}") == 1

"""What the browser test needs: Debian's Chromium (installed with apt-get when missing), a `dagster dev`
on a free loopback port in a process group of its own, and Playwright launched on that Chromium.

Playwright's own browser download is never used: the Python package drives the system Chromium through
`executable_path`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from feature_platform_tests.helpers import free_port

# Headless on a closed network: without the background-networking switches Chromium keeps trying to
# reach update and sync services and logs refused connections.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser")
APT_TIMEOUT = 900


class ChromiumUnavailable(RuntimeError):
    """No Chromium executable, and none could be installed here."""


def chromium_executable() -> str:
    """Path of a Chromium to drive: FEATURE_PLATFORM_TEST_CHROMIUM, else the system one, else apt-get install it."""
    override = os.environ.get("FEATURE_PLATFORM_TEST_CHROMIUM")
    if override:
        if not Path(override).is_file():
            raise ChromiumUnavailable(f"FEATURE_PLATFORM_TEST_CHROMIUM={override} is not a file")
        return override
    found = _find_chromium()
    if found:
        return found
    _apt_install_chromium()
    found = _find_chromium()
    if not found:
        raise ChromiumUnavailable("apt-get installed chromium but no chromium executable is on PATH")
    return found


def _find_chromium() -> str | None:
    for candidate in CHROMIUM_CANDIDATES:
        path = candidate if os.path.isabs(candidate) else shutil.which(candidate)
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def _apt_install_chromium() -> None:
    if not shutil.which("apt-get"):
        raise ChromiumUnavailable("no chromium and no apt-get to install Debian's chromium package")
    if os.geteuid() != 0:
        raise ChromiumUnavailable("no chromium, and installing it with apt-get needs root (apt-get install chromium)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "chromium"]  # with its recommended fonts
    done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=APT_TIMEOUT)
    if done.returncode != 0:  # stale or missing package lists on a fresh machine
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, text=True, timeout=APT_TIMEOUT)
        done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=APT_TIMEOUT)
    if done.returncode != 0:
        raise ChromiumUnavailable(f"apt-get install chromium failed: {done.stderr.strip()[-500:]}")


def graphql(base_url: str, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(f"{base_url}/graphql", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        payload = json.load(response)
    if payload.get("errors"):
        raise AssertionError(f"GraphQL errors: {payload['errors']}")
    return payload["data"]


_LOCATIONS = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus " \
             "locationOrLoadError { __typename ... on PythonError { message } } } } } }"


@contextmanager
def dagster_dev(workspace: Path, env: dict[str, str], cwd: Path, log_path: Path,
                timeout: float = 180) -> Iterator[str]:
    """`dagster dev` (webserver + daemon) on a free loopback port; yields its base URL once the code
    location has loaded, and ends its whole process group afterwards."""
    with dagster_dev_process(workspace, env, cwd, log_path, timeout) as (_, base_url):
        yield base_url


@contextmanager
def dagster_dev_process(workspace: Path, env: dict[str, str], cwd: Path, log_path: Path,
                        timeout: float = 180) -> Iterator[tuple[subprocess.Popen, str]]:
    """`dagster_dev`, yielding its process (the leader of its process group) with the base URL."""
    port = free_port()
    dagster = Path(sys.executable).with_name("dagster")
    command = [str(dagster), "dev", "-h", "127.0.0.1", "-p", str(port), "-w", str(workspace)]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_loaded(proc, base_url, log_path, timeout)
        yield proc, base_url
    finally:
        _stop_group(proc)


def _wait_until_loaded(proc: subprocess.Popen, base_url: str, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dagster dev exited with {proc.returncode}:\n{_tail(log_path)}")
        try:
            entries = graphql(base_url, _LOCATIONS)["workspaceOrError"]["locationEntries"]
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                errors = [e for e in entries if e["locationOrLoadError"]["__typename"] != "RepositoryLocation"]
                if errors:
                    raise RuntimeError(f"code location failed to load: {errors}")
                return
            last = f"locations {entries}"
        except OSError as exc:  # not listening yet
            last = str(exc)
        time.sleep(1)
    raise TimeoutError(f"dagster dev not ready after {timeout}s ({last}):\n{_tail(log_path)}")


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the process group we created (webserver, daemon, code server), SIGKILL what lingers."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        # the leader is gone; make sure no child of the group survives it
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(1)


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""

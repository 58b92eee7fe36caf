"""Shared fixtures: the profile each test runs on, an embedded platform in a temp dir, the real services
(PostgreSQL + Redis), and the push tests' clock. Plain helpers (settings, sessions, ports, a private redis-server)
are in helpers.py.

Markers (pyproject.toml): `services` (PostgreSQL and Redis, or a private redis-server), `spark` (PySpark in local
mode), `browser` (headless Chromium); `-m "not services and not spark and not browser"` runs the tests that need
none of them."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from feature_platform.config import Settings
from feature_platform_tests.helpers import (  # noqa: F401 - re-exported for tests that import them from here
    IN_CI,
    TEST_REDIS_DB,
    clock,
    make_embedded_settings,
    services_settings_in,
    sessions_frame,
    write_sessions,
)

warnings.filterwarnings("ignore", message=".*(beta|preview|superseded|deprecated).*")

# Property tests: under CI=true the "ci" profile, the same examples on every run (derandomized: seeded from each
# test function; no example database), so a green main stays green; locally the "dev" profile keeps the random
# search, which finds new failures. Neither has a deadline (a busy machine must not fail a test on timing), and a
# failure prints its reproduction blob. HYPOTHESIS_PROFILE overrides the choice. Tests' own @settings set only
# example counts, deadlines and health checks, so these choices hold for every test.
hypothesis_settings.register_profile("ci", derandomize=True, database=None, print_blob=True, deadline=None)
hypothesis_settings.register_profile("dev", print_blob=True, deadline=None)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if IN_CI else "dev"))

PROFILES = ["embedded", pytest.param("services", marks=pytest.mark.services)]


@pytest.fixture(scope="module", params=PROFILES)
def profile(request) -> str:
    """A test (or module fixture) that takes it runs once per profile: "embedded" (files and SQLite) and
    "services" (PostgreSQL and Redis, marked `services`). Module-scoped, so a module's tests run profile by
    profile and a module fixture can build one platform per profile."""
    return request.param


@pytest.fixture
def profile_settings(profile: str, request) -> Settings:
    """The settings of this test's profile on a fresh home (and, for services, fresh databases)."""
    return request.getfixturevalue(f"{profile}_settings")


@pytest.fixture
def embedded_settings(tmp_path: Path) -> Settings:
    return make_embedded_settings(tmp_path)


@pytest.fixture
def services_settings(tmp_path: Path):
    with services_settings_in(tmp_path) as settings:
        yield settings


@pytest.fixture
def fresh_clock():
    """The push tests' clock, reset to this test's start."""
    return clock.reset()


# Files that take minutes (the longest first): the xdist workers start them first, so none is left running alone
# at the end of the run (pyproject.toml turns off xdist's own order, by number of tests per file).
SLOWEST_FILES = ("test_killed_runs.py", "test_ui_browser.py", "test_range_failures.py", "test_cli.py", "test_tutorial.py")


@pytest.hookimpl(trylast=True)  # after pytest's own grouping by fixture scope, which keeps each file together
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that takes the services fixture needs the services, whether or not its file says so; the slowest
    files come first."""
    for item in items:
        if "services_settings" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.services)
    rank = {name: i for i, name in enumerate(SLOWEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order

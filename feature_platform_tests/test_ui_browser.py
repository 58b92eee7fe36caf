"""The Dagster UI in a real browser, used the way a user would after the demo.

The demo runs on the embedded profile into a temporary home; `dagster dev` (webserver + daemon) serves
that instance on a free loopback port; headless Debian Chromium, driven by Playwright, then
- opens the asset graph: the feature views, the training set, their groups and their lineage;
- opens `user_activity`'s partitions and launches a backfill of three missing partitions from the
  launch dialog, then watches the backfill page until all three succeed;
- checks the asset page's freshness policy and the Checks tab;
- scaffolds a repository with `feature-platform init` and finds its source and view in its own asset graph.
Screenshots go to FEATURE_PLATFORM_TEST_SCREENSHOTS (the docs' images come from here:
`FEATURE_PLATFORM_TEST_SCREENSHOTS=docs/images .venv/bin/pytest feature_platform_tests/test_ui_browser.py`),
else to a temporary directory.

Chromium is Debian's package, installed with apt-get by `browser.chromium_executable` when missing;
without it the test skips locally and fails under CI=true.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pytest
from chat_activity.user_activity import SPEC as USER_ACTIVITY

from feature_platform_tests.browser import CHROMIUM_ARGS, ChromiumUnavailable, chromium_executable, dagster_dev, graphql
from feature_platform_tests.helpers import IN_CI

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
DEMO_DAYS = 5
HISTORY_DAYS = 12  # partitions start 12 days ago; the demo fills the last 5, the backfill 3 before them
BACKFILL = 3
VIEWPORT = {"width": 1700, "height": 950}
BACKFILL_TIMEOUT = 420  # runs start in subprocesses that load the code location; slow on a busy machine


def _unavailable(reason: str):
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: the browser test never skips)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def chromium() -> str:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        _unavailable(f"playwright is not installed ({exc}); install the dev extras: pip install -e '.[dev]'")
    try:
        return chromium_executable()
    except ChromiumUnavailable as exc:
        _unavailable(str(exc))


@pytest.fixture(scope="module")
def demo_home(chromium, tmp_path_factory) -> dict:
    """`feature-platform demo` into a temporary home, with partitions starting HISTORY_DAYS ago."""
    root = tmp_path_factory.mktemp("ui")
    today = datetime.now(timezone.utc).date()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FEATURE_PLATFORM_", "DAGSTER_HOME"))}
    env.update({
        "FEATURE_PLATFORM_HOME": str(root / "home"),
        "FEATURE_PLATFORM_PARTITIONS_START": (today - timedelta(days=HISTORY_DAYS)).isoformat(),
        "FEATURE_PLATFORM_DEMO_USERS": "300",
        "PYTHONFAULTHANDLER": "1",  # a crash (a signal such as SIGABRT) prints every thread's Python traceback
    })
    done = subprocess.run([sys.executable, "-m", "feature_platform.cli", "demo", "--days", str(DEMO_DAYS)],
                          cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"stdout:\n{done.stdout[-2000:]}\nstderr:\n{done.stderr[-6000:]}"
    assert f"summary: {DEMO_DAYS} partitions" in done.stdout
    # the demo's Dagster instance (runs, materializations, check results) is the one the UI serves
    env["DAGSTER_HOME"] = str(root / "home" / "dagster")
    assert (root / "home" / "dagster" / "dagster.yaml").is_file()
    return {"root": root, "env": env, "today": today}


@pytest.fixture(scope="module")
def dagster_url(demo_home):
    log = demo_home["root"] / "dagster-dev.log"
    with dagster_dev(ROOT / "workspace.yaml", demo_home["env"], demo_home["root"], log) as url:
        yield url


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    configured = os.environ.get("FEATURE_PLATFORM_TEST_SCREENSHOTS")
    path = Path(configured).absolute() if configured else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def page(chromium, dagster_url):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=30_000)  # pages fill in as their queries return, slower on a busy machine

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport=VIEWPORT)
        context.set_default_timeout(30_000)
        page = context.new_page()
        page.goto(f"{dagster_url}/overview")
        try:  # a fresh instance greets its first visitor with a newsletter dialog
            page.get_by_role("button", name="Skip").click(timeout=8_000)
        except PlaywrightTimeout:
            pass
        page.get_by_text("Hide navigation").click()  # more room for the graph (remembered by the browser)
        yield page
        context.close()
        browser.close()


def shot(page, directory: Path, name: str) -> None:
    page.wait_for_timeout(500)  # let transitions settle
    page.screenshot(path=str(directory / f"{name}.png"))


def test_asset_graph_shows_feature_views_training_set_and_lineage(page, dagster_url, screenshots):
    from playwright.sync_api import expect

    page.goto(f"{dagster_url}/asset-groups")
    expect(page.get_by_text("Global asset lineage")).to_be_visible()
    expand = page.get_by_role("img", name="unfold_more")  # one per collapsed group node
    expect(expand).to_have_count(3)
    for _ in range(3):
        expand.first.click()
    expect(expand).to_have_count(0)
    assert "expanded=" in page.url
    page.reload()  # re-fit the expanded graph to the window
    nodes = ["raw_sessions", "user_realtime_events", "user_activity", "user_realtime",
             "churn_training_set_labels", "churn_training_set"]
    for name in [*nodes, "sources", "feature_views", "training_sets"]:
        expect(page.get_by_text(name, exact=True).first).to_be_visible()
    # the daily nodes carry their partition count (partitions start HISTORY_DAYS ago here)
    expect(page.get_by_text(f"{HISTORY_DAYS} partitions").first).to_be_visible()
    shot(page, screenshots, "asset-graph")

    # lineage: everything upstream of the training set, typed into the graph's selection box
    page.locator(".CodeMirror").first.click()
    page.keyboard.type('+key:"churn_training_set"')
    page.keyboard.press("Enter")
    expect(page.get_by_text("user_realtime", exact=True)).to_have_count(0)
    for name in ["raw_sessions", "user_activity", "churn_training_set_labels", "churn_training_set"]:
        expect(page.get_by_text(name, exact=True).first).to_be_visible()
    assert "churn_training_set" in page.url
    shot(page, screenshots, "lineage-training-set")


def _partition_counts(page) -> dict[str, int]:
    text = page.inner_text("body")
    return {k: int(v) for k, v in re.findall(r"(Failed|Materialized|Materializing|Missing) \((\d+)\)", text)}


def _backfill_counts(page) -> list[int] | None:
    """user_activity's row on the backfill page: targeted, in progress, succeeded, failed."""
    row = re.search(r"user_activity\s+\d+% completed\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", page.inner_text("body"))
    return [int(n) for n in row.groups()] if row else None


def test_backfill_of_partitions_launched_from_the_ui_succeeds(page, dagster_url, demo_home, screenshots):
    from playwright.sync_api import expect

    today: date = demo_home["today"]
    days = [today - timedelta(days=DEMO_DAYS + BACKFILL - i) for i in range(BACKFILL)]  # just before the demo's
    page.goto(f"{dagster_url}/assets/user_activity?view=partitions")
    expect(page.get_by_text(f"Materialized ({DEMO_DAYS})")).to_be_visible()
    assert _partition_counts(page) == {"Failed": 0, "Materialized": DEMO_DAYS, "Materializing": 0,
                                       "Missing": HISTORY_DAYS - DEMO_DAYS}

    page.get_by_role("button", name="Materialize…").first.click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("Launch runs to materialize user_activity")).to_be_visible()
    selection = dialog.locator("input[type=text]").first
    selection.fill(f"[{days[0]}...{days[-1]}]")
    selection.press("Enter")
    expect(dialog.get_by_text(f"{BACKFILL} partitions", exact=True)).to_be_visible()
    shot(page, screenshots, "launch-backfill")
    dialog.get_by_role("button", name="Launch backfill").click()

    toast = page.get_by_text(re.compile(r"Created backfill \w+"))
    expect(toast).to_be_visible()
    backfill_id = toast.inner_text().split()[-1]
    page.get_by_role("link", name="View", exact=True).click()
    expect(page).to_have_url(re.compile(f"/runs/b/{backfill_id}"))

    started = time.monotonic()
    while True:
        page.wait_for_timeout(5_000)
        page.reload()
        expect(page.get_by_text("Partition selection")).to_be_visible()
        status = re.search(r"Status\s+(\w[\w ]*)", page.inner_text("body"))
        counts = _backfill_counts(page)
        assert counts is None or counts[3] == 0, f"a partition failed: {counts}"
        if status and status.group(1).strip() in ("Succeeded", "Completed") and counts == [BACKFILL, 0, BACKFILL, 0]:
            break
        assert status is None or status.group(1).strip() not in ("Failed", "Canceled"), status.group(1)
        assert time.monotonic() - started < BACKFILL_TIMEOUT, f"backfill not done: {status and status.group(1)} {counts}"
    assert page.get_by_text(f"{days[0]}...{days[-1]}").is_visible()  # the partition selection it ran
    shot(page, screenshots, "backfill-succeeded")

    # the backfill page agrees with the instance and with the data written
    data = graphql(dagster_url, """query ($id: String!) {
        partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } }
        assetNodeOrError(assetKey: {path: ["user_activity"]}) {
          ... on AssetNode { partitionStats { numMaterialized numFailed } } } }""", {"id": backfill_id})
    assert data["partitionBackfillOrError"]["status"] == "COMPLETED_SUCCESS"
    assert data["assetNodeOrError"]["partitionStats"] == {"numMaterialized": DEMO_DAYS + BACKFILL, "numFailed": 0}
    offline = demo_home["root"] / "home" / "offline" / "user_activity"
    assert all((offline / f"{d}.parquet").is_file() for d in days)

    # back on the partitions tab: the three partitions are materialized, with their metadata
    page.goto(f"{dagster_url}/assets/user_activity?view=partitions")
    expect(page.get_by_text(f"Materialized ({DEMO_DAYS + BACKFILL})")).to_be_visible()
    assert _partition_counts(page)["Failed"] == 0
    page.get_by_text(str(days[-1]), exact=True).first.click()
    expect(page.get_by_text("dagster/row_count").or_(page.get_by_text("closing_rows")).first).to_be_visible()
    shot(page, screenshots, "partitions")


def test_asset_page_shows_freshness_policy_and_asset_checks(page, dagster_url, screenshots, demo_home):
    from playwright.sync_api import expect

    fail_h = int(USER_ACTIVITY.freshness_sla.total_seconds() // 3600)
    warn_h = int(USER_ACTIVITY.warn_window.total_seconds() // 3600)
    page.goto(f"{dagster_url}/assets/user_activity")
    expect(page.get_by_role("button", name="Freshness policy")).to_be_visible()
    expect(page.get_by_text(f"Fails if more than {fail_h} hours since last materialization")).to_be_visible()
    expect(page.get_by_text(f"Warns if more than {warn_h} hours since last materialization")).to_be_visible()
    # the state comes from Dagster's freshness daemon (every 30 s): the view was just materialized
    expect(page.get_by_text("Passing").first).to_be_visible(timeout=90_000)
    # The lineage lists load after the headings: waited for (Playwright retries), not read once.
    body = page.locator("body")
    expect(body).to_contain_text(re.compile(r"Upstream assets\s+raw_sessions"), use_inner_text=True)
    expect(body).to_contain_text(re.compile(r"Downstream assets\s+churn_training_set"), use_inner_text=True)
    expect(body).to_contain_text(f"version: {USER_ACTIVITY.version}", use_inner_text=True)
    shot(page, screenshots, "asset-overview")

    checks = ["data_freshness", "feature_drift", "freshness_check", "online_offline_skew", "pandera_schema"]
    page.get_by_text("Checks", exact=True).first.click()
    expect(page).to_have_url(re.compile(r"view=checks"))
    expect(page.get_by_text(f"Checks ({len(checks)})")).to_be_visible()
    # the checks evaluated with each partition's run (and the partition-freshness sensor's): latest passed
    for check in ["pandera_schema", "freshness_check"]:
        expect(page.locator(f'div[title="{check}"] + span').first).to_have_text("Succeeded")
    # feature_drift's and online_offline_skew's latest results are the UI backfill's: its partitions have no
    # computed week before them to compare with, and every entity they hold has a newer (the demo's days) value
    # online. Each is a skipped warning that says why (never a pass over nothing).
    for check in ["feature_drift", "online_offline_skew"]:
        expect(page.locator(f'div[title="{check}"] + span').first).to_have_text(re.compile("Succeeded|Failed"))
        with dg.DagsterInstance.from_config(demo_home["env"]["DAGSTER_HOME"]) as instance:
            key = dg.AssetCheckKey(dg.AssetKey("user_activity"), check)
            record = instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key]
            evaluation = record.event.dagster_event.event_specific_data
            assert evaluation.passed or (evaluation.severity == dg.AssetCheckSeverity.WARN
                                         and "skipped_reason" in evaluation.metadata), evaluation

    # data_freshness runs from a schedule every minute, so its latest run may be in progress: read its history
    deadline = time.monotonic() + 150
    while True:
        page.get_by_text("data_freshness", exact=True).first.click()
        page.get_by_text("Execution history", exact=True).click()
        fresh = page.get_by_text("user_activity is fresh")
        try:
            expect(fresh.first).to_be_visible(timeout=10_000)
            break
        except AssertionError:
            assert time.monotonic() < deadline, "data_freshness never passed"
            page.reload()
    expect(page.get_by_text("Passed").first).to_be_visible()

    page.get_by_text("pandera_schema", exact=True).first.click()
    page.get_by_text("Overview", exact=True).last.click()
    expect(page.get_by_text("blocking", exact=True).first).to_be_visible()
    expect(page.get_by_text("Evaluation result")).to_be_visible()
    expect(page.get_by_text("Passed").first).to_be_visible()
    shot(page, screenshots, "asset-checks")


def test_a_scaffolded_repository_shows_its_source_and_view_in_the_asset_graph(page, tmp_path_factory, screenshots):
    """`feature-platform init DIR` and `dagster dev -w DIR/workspace.yaml`: the team's own source and view are
    in the asset graph, in their groups, with the raw source upstream of the view."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect

    root = tmp_path_factory.mktemp("init-ui")
    repo = root / "team_features"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FEATURE_PLATFORM_", "DAGSTER_HOME"))}
    env.update({"FEATURE_PLATFORM_HOME": str(root / "home"), "DAGSTER_HOME": str(root / "dagster")})
    (root / "dagster").mkdir()
    done = subprocess.run([sys.executable, "-m", "feature_platform.cli", "init", str(repo)], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    with dagster_dev(repo / "workspace.yaml", env, root, root / "dagster-dev.log") as url:
        context = page.context.browser.new_context(viewport=VIEWPORT)  # the module's browser, a fresh profile
        context.set_default_timeout(30_000)
        page = context.new_page()
        page.goto(f"{url}/asset-groups")
        expect(page.get_by_text("Global asset lineage")).to_be_visible(timeout=60_000)
        try:  # a fresh instance greets its first visitor with a newsletter dialog
            page.get_by_role("button", name="Skip").click(timeout=8_000)
        except PlaywrightTimeout:
            pass
        expand = page.get_by_role("img", name="unfold_more")  # one per collapsed group node
        expect(expand).to_have_count(2)  # the scaffold's groups: sources, feature_views
        for _ in range(2):
            expand.first.click()
        expect(expand).to_have_count(0)
        assert "expanded=" in page.url
        page.reload()
        for name in ["raw_events", "user_events_7d", "sources", "feature_views"]:
            expect(page.get_by_text(name, exact=True).first).to_be_visible()
        assert "churn_training_set" not in page.inner_text("body")  # the team's repository, not the example's
        shot(page, screenshots, "asset-graph-init-repository")
        page.goto(f"{url}/assets/user_events_7d")
        expect(page.get_by_text("Upstream assets").first).to_be_visible()
        # The list loads after its heading: waited for (Playwright retries), not read once.
        expect(page.locator("body")).to_contain_text(re.compile(r"Upstream assets\s+raw_events"), use_inner_text=True)
        context.close()

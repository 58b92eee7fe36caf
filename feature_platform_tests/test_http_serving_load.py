"""The HTTP feature server under load against real Redis (issue 11 item 4): the benchmark's own code
(benchmarks/http_serving.py), briefly, on a few hundred entities: the server started with the CLI,
closed-loop and open-loop load, every response checked, no error at all. No timing assertions:
latencies and rates are reported, not judged."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
from chat_activity.user_activity import SPEC

from benchmarks import http_serving, online_load
from feature_platform.demo.generator import generate_day
from feature_platform.platform import FeaturePlatform
from feature_platform.serving.server import running_server
from feature_platform_tests.helpers import services_settings_in, write_sessions

pytestmark = pytest.mark.services
D = datetime.now(timezone.utc).date() - timedelta(days=1)  # the server reads with the real clock: within the TTL
USERS = 300
MAX_ID = 360  # ids above USERS never had a session: they must come back NOT_FOUND, under load too


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """One materialized partition for both tests (read-only from here on)."""
    root = tmp_path_factory.mktemp("http_serving")
    with services_settings_in(root) as settings:
        write_sessions(settings.sessions_path,
                       pd.concat([generate_day(D - timedelta(days=i), USERS, seed=4) for i in range(9)]))
        rows, _ = online_load.materialize(settings, D)
        yield settings, online_load.Expected.from_offline(rows, SPEC.feature_names, MAX_ID), root


def test_http_load_through_the_cli_server_is_all_correct(loaded):
    settings, expected, root = loaded
    out = http_serving.serve_and_load(settings, expected, workers=1, closed=http_serving.CLOSED, seconds=0.6,
                                      step_seconds=1.0, rates={1: (20, 40), 100: (5,)}, processes=2, threads=2,
                                      open_threads=2, max_id=MAX_ID, log_dir=root / "logs", log=lambda _m: None)
    results = {"users": MAX_ID, "partition": D.isoformat(), "sessions": 0, "offline_rows": 0, "materialize_sec": 0.0,
               "entities_online": expected.present, "uptime_before": "-", "uptime_after": "-", "servers": [out],
               "environment": _environment()}
    http_serving.ratios(results)

    scenarios = out["closed_loop"]["scenarios"]
    assert set(scenarios) == {f"{p}_{n}" for p, n in http_serving.CLOSED}
    for name, s in scenarios.items():
        assert s["errors"] == 0 and s["exceptions"] == 0 and s["non_200"] == 0, (name, s["error_samples"])
        assert s["requests"] > 0 and s["responses_checked"] == s["requests"], name
        # both present and absent entities were read (and checked) under load
        assert 0 < s["entities_with_values"] < s["entities_read"] == s["requests"] * s["entities_per_request"], name
    for n in (1, 100):
        s = scenarios[f"http_{n}"]
        assert set(s["vs_raw"]) == set(s["vs_platform"]) == {"requests_per_sec", "p50_ms", "p99_ms", "p999_ms"}
        assert s["server_cpu_sec"] > 0 and s["server_cpu_ms_per_request"] > 0 and s["client_cpu_ms_per_request"] > 0
        assert s["redis_cores"] >= 0 and s["other_cores"] is not None

    for n, ladder in out["open_loop"].items():
        assert ladder["steps"], n
        for step in ladder["steps"]:
            assert step["errors"] == 0 and step["non_200"] == 0, (n, step["error_samples"])
            assert step["sent"] > 0 and step["responses_checked"] == step["sent"], n
            for field in ("achieved_per_sec", "p50_ms", "p99_ms", "p999_ms", "server_cores", "client_cores",
                          "redis_cores", "machine_busy_cores"):
                assert step[field] is not None and step[field] >= 0, (n, field)
        assert {"max_sustained_per_sec", "max_sustained_p99_ms", "first_not_sustained"} <= set(ladder)

    markdown = http_serving.render(results)
    assert "| zero errors over HTTP under load (closed loop and every sustained rate) | 0 | PASS |" in markdown
    assert "http, 1 worker" in markdown


def test_wrong_answers_and_error_responses_are_caught(loaded):
    """The checks are live: a wrong value, a wrong status and a non-200 answer are each counted and named."""
    settings, expected, _root = loaded
    present = [u for u in range(1, MAX_ID + 1) if expected.rows[u][0] is not None]
    users = [MAX_ID, present[0], present[1]]  # an absent id, then two present ones
    with running_server(FeaturePlatform(settings)) as url:
        reader = http_serving.HttpReader(expected, url)
        got, ids = reader(users)
        assert ids == users and online_load.check(expected, "http", users, got, ids) is None

        bad_rows = list(expected.rows)
        bad_rows[present[1]] = (bad_rows[present[1]][0] + 1, *bad_rows[present[1]][1:])
        bad = online_load.Expected(expected.features, bad_rows, expected.present)
        why = online_load.check(bad, "http", users, *http_serving.HttpReader(bad, url)(users))
        assert why is not None and "'user_activity'" in why and "'sessions_7d'" in why
        assert f"row 2 (user_id={present[1]})" in why

        # a stored entity the expected rows call absent: its PRESENT statuses are wrong too
        gone = list(expected.rows)
        gone[present[0]] = (None,) * len(expected.features)
        gone_expected = online_load.Expected(expected.features, gone, expected.present)
        why = online_load.check(gone_expected, "http", users, *http_serving.HttpReader(gone_expected, url)(users))
        assert why is not None and f"row 1 (user_id={present[0]})" in why and "status PRESENT" in why

        # a non-200 answer is an exception counted as such by the load loop, with the server's reason
        unknown = online_load.Expected(("no_such_feature",), [(None,)] * (MAX_ID + 1), 0)
        with pytest.raises(http_serving.HttpStatusError, match="404") as raised:
            http_serving.HttpReader(unknown, url)([1])
        assert raised.value.http_status == 404 and "no_such_feature" in str(raised.value)
        out: dict = {}
        deadline = online_load.time.perf_counter() + 0.2
        online_load._client_loop(http_serving.HttpReader(unknown, url), unknown, "http", 1, MAX_ID, deadline, 1, out)
        assert out["exceptions"] == out["non_200"] > 0 and out["checked"] == 0
        assert "404" in out["errors"][0]


def _environment() -> dict:
    return {"date": "-", "cpu_count": 0, "memory_gb": 0, "python": "-", "platform": "-", "git_commit": "-",
            "versions": {}}

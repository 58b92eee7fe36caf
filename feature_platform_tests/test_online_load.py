"""Online reads under concurrent load against real Redis (issue 9 item 7): the benchmark's own load code
(benchmarks/online_load.py), briefly, on a few hundred entities: every response is checked against the
partition's offline rows and there must be no error at all. No timing assertions: latencies are reported,
not judged."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest
from chat_activity.user_activity import SPEC

from benchmarks import online_load
from feature_platform.demo.generator import generate_day
from feature_platform.platform import FeaturePlatform
from feature_platform.vocabulary import day_end
from feature_platform_tests.helpers import services_settings_in, write_sessions

pytestmark = pytest.mark.services
D = date(2026, 4, 10)
USERS = 300
MAX_ID = 360  # ids above USERS never had a session: they must be read as missing, under load too
NOW = pd.Timestamp(day_end(D)) + timedelta(hours=1)  # within the view's TTL


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """One materialized partition for both tests (read-only from here on)."""
    with services_settings_in(tmp_path_factory.mktemp("online_load")) as settings:
        write_sessions(settings.sessions_path,
                       pd.concat([generate_day(D - timedelta(days=i), USERS, seed=4) for i in range(9)]))
        rows, _ = online_load.materialize(settings, D)
        yield settings, online_load.Expected.from_offline(rows, SPEC.feature_names, MAX_ID)


def test_concurrent_reads_are_all_correct(loaded):
    settings, expected = loaded
    assert 0 < expected.present <= USERS
    report = online_load.run_load(settings, expected, now=NOW.to_pydatetime(), seconds=0.75, processes=2, threads=3)

    assert report["clients"] == 6 and report["entities_online"] == expected.present
    assert set(report["scenarios"]) == {"raw_1", "platform_1", "raw_100", "platform_100"}
    for name, s in report["scenarios"].items():
        assert s["errors"] == 0 and s["exceptions"] == 0 and s["wrong_answers"] == 0, (name, s["error_samples"])
        assert s["requests"] > 0 and s["responses_checked"] == s["requests"], name
        assert s["entities_read"] == s["requests"] * s["entities_per_request"]
        # both present and absent entities were read (and checked) under load
        assert 0 < s["entities_with_values"] < s["entities_read"], name
        for field in ("requests_per_sec", "p50_ms", "p99_ms", "p999_ms", "max_ms", "client_cpu_ms_per_request"):
            assert s[field] is not None and s[field] >= 0, (name, field)
    for n in (1, 100):
        assert set(report["scenarios"][f"platform_{n}"]["vs_raw"]) == {"requests_per_sec", "p50_ms", "p99_ms", "p999_ms"}

    markdown = online_load.render({"users": MAX_ID, "partition": D.isoformat(), "sessions": 0, "offline_rows": 0,
                                   "materialize_sec": 0.0, "load": report, "environment": _environment()})
    assert "| zero errors under load (exceptions + wrong answers) | 0 | PASS |" in markdown


def test_a_wrong_answer_is_caught_and_named(loaded):
    """The check is live: one corrupted expected value is reported, naming the view, column and row."""
    settings, expected = loaded
    platform = FeaturePlatform(settings)
    present = [u for u in range(1, MAX_ID + 1) if expected.rows[u][0] is not None]
    users = [MAX_ID, present[0], present[1]]  # an absent id, then two present ones
    fn = online_load._request_fns(platform, expected, NOW.to_pydatetime())
    for path in ("platform", "raw"):
        got, ids = fn[path](users)
        assert online_load.check(expected, path, users, got, ids) is None

    bad_rows = list(expected.rows)
    bad_rows[present[1]] = (bad_rows[present[1]][0] + 1, *bad_rows[present[1]][1:])
    bad = online_load.Expected(expected.features, bad_rows, expected.present)
    got, ids = fn["platform"](users)
    why = online_load.check(bad, "platform", users, got, ids)
    assert why is not None and "'user_activity'" in why and "'sessions_7d'" in why
    assert f"row 2 (user_id={present[1]})" in why

    # the right number in the wrong type is wrong
    typed = list(expected.rows)
    typed[present[0]] = (float(typed[present[0]][0]), *typed[present[0]][1:])
    why = online_load.check(online_load.Expected(expected.features, typed, expected.present), "platform", users, got, ids)
    assert why is not None and f"row 1 (user_id={present[0]})" in why

    # an absent entity returned with values, or a present one as missing, is wrong too
    missing = list(expected.rows)
    missing[present[0]] = (None,) * len(expected.features)
    why = online_load.check(online_load.Expected(expected.features, missing, expected.present), "raw", users,
                            fn["raw"](users)[0])
    assert why is not None and f"row 1 (user_id={present[0]})" in why and "(entity absent)" in why


def _environment() -> dict:
    return {"date": "-", "cpu_count": 0, "memory_gb": 0, "python": "-", "platform": "-", "git_commit": "-",
            "versions": {}}

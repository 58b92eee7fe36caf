"""The command line's conventions (issue 20 item 10): every command documented with an example, `--help` without
the heavy libraries, `--json` on every table, `views`, `remove --view`, one `error: <ErrorType>: ...` line with the
stack only under --verbose, and the summary `materialize` ends with."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
from datetime import date, timedelta

import pandas as pd
import pytest

from feature_platform.cli import app, main
from feature_platform.demo.generator import generate_day
from feature_platform_tests.example_repo import all_specs
from feature_platform_tests.helpers import make_embedded_settings, write_sessions

COMMANDS = app.parsers()[1]  # name -> its parser
TABLE_COMMANDS = {"views", "freshness", "history", "online", "plan", "apply", "materialize"}
HEAVY = ("feast", "dagster", "pandas", "duckdb", "pyspark")


def run_main(argv: list[str]) -> tuple[int, str, str]:
    """`main(argv)` in this process: exit status, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = main(argv)
        except SystemExit as exit_:
            code = exit_.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory):
    """The CLI's environment: an embedded platform in a fresh home (nothing materialized)."""
    settings = make_embedded_settings(tmp_path_factory.mktemp("cli_conventions"))
    with pytest.MonkeyPatch.context() as patch:
        for name, value in settings.as_env().items():
            patch.setenv(name, value)
        yield settings


def test_the_commands_are_those_documented():
    assert set(COMMANDS) == {"demo", "materialize", "online", "stream", "freshness", "views", "plan", "apply",
                             "remove", "history", "serve", "feast-config", "init"}
    readme = open(os.path.join(os.path.dirname(__file__), "..", "README.md")).read()
    cli_section = readme[readme.index("\n## CLI\n"):readme.index("\n## ", readme.index("\n## CLI\n") + 1)]
    for name in COMMANDS:
        assert f"feature-platform {name}" in cli_section, name


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_help_has_a_description_and_an_example(name, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([name, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    description, epilog = COMMANDS[name].description, COMMANDS[name].epilog
    assert description and len(description) > 40 and description.split()[0] in out
    assert epilog.startswith("example") and f"\n  feature-platform {name}" in epilog
    assert f"feature-platform {name}" in out.split("example")[-1]
    assert "--verbose" in out


@pytest.mark.parametrize("name", sorted(TABLE_COMMANDS))
def test_every_command_printing_a_table_takes_json(name):
    assert "\n  --json " in COMMANDS[name].format_help()


def test_help_and_the_light_modules_load_no_heavy_library():
    """`--help` of the CLI and of each command answers without Feast, Dagster, pandas, DuckDB or PySpark (measured
    on the import graph of a fresh interpreter, not as a wall time)."""
    probe = (
        "import sys, contextlib, io\n"
        "import feature_platform, feature_platform.spec, feature_platform.errors\n"
        "from feature_platform.cli import main\n"
        f"for argv in [[], *[[c] for c in {sorted(COMMANDS)!r}]]:\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        try:\n"
        "            main([*argv, '--help'])\n"
        "        except SystemExit:\n"
        "            pass\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_package_loads_the_facade_on_first_use():
    probe = ("import sys, feature_platform as fp\n"
             "assert 'feature_platform.platform' not in sys.modules and 'FeaturePlatform' in dir(fp)\n"
             "from feature_platform import FeaturePlatform\n"
             "from feature_platform.platform import FeaturePlatform as F\n"
             "assert FeaturePlatform is F is fp.FeaturePlatform\n"
             "try:\n    fp.Nope\nexcept AttributeError as e:\n    print(e)\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "module 'feature_platform' has no attribute 'Nope'"


def test_views_lists_versions_sources_entities_and_sla(cli_env):
    code, out, err = run_main(["views"])
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["view", "version", "family", "entity", "source", "features", "ttl", "freshness", "sla",
                                "status"]
    assert len(lines) == 1 + len(all_specs())
    activity = next(line for line in lines if line.startswith("user_activity "))
    assert activity.split()[:5] == ["user_activity", "2", "user_activity", "user", "(user_id)"]
    assert f"{all_specs()['user_activity'].aggregation.source} (7d window)" in activity and activity.endswith(" active")
    realtime = next(line for line in lines if line.startswith("user_realtime "))
    assert "push: user_realtime_events" in realtime

    code, out, err = run_main(["views", "--json"])
    assert code == 0, err
    rows = {row["view"]: row for row in json.loads(out)}
    assert set(rows) == set(all_specs())
    for name, spec in all_specs().items():
        row = rows[name]
        assert (row["family"], row["version"], row["entity"], row["join_key"]) == (
            spec.family_name, spec.version, spec.entity.name, spec.entity.join_key)
        assert row["freshness_sla"] == spec.freshness_sla.total_seconds()
        assert row["ttl"] == spec.ttl.total_seconds() and row["features"] == spec.feature_names
        assert row["source_kind"] == ("push" if spec.push_source else "batch")
    assert rows["user_activity"]["window"] == timedelta(days=7).total_seconds()
    assert rows["user_realtime"]["source"] == "push: user_realtime_events" and rows["user_realtime"]["window"] is None


def test_freshness_and_online_as_json(cli_env):
    code, out, err = run_main(["freshness", "--json"])
    assert code == 1, err  # nothing materialized: every view is missing
    rows = json.loads(out)
    assert {row["view"] for row in rows} == set(all_specs())
    assert all(row["status"] == "missing" and row["age"] is None for row in rows)
    assert {row["view"]: row["sla"] for row in rows} == {
        name: spec.freshness_sla.total_seconds() for name, spec in all_specs().items()}

    code, out, err = run_main(["online", "--view", "user_activity", "--entity", "7", "--features",
                               "sessions_7d,preferred_model", "--json"])
    assert code == 0, err
    assert json.loads(out) == [
        {"feature": "sessions_7d", "value": None, "status": "missing", "event_timestamp": None},
        {"feature": "preferred_model", "value": None, "status": "missing", "event_timestamp": None},
    ]


def test_apply_and_history_as_json(cli_env):
    code, out, err = run_main(["apply", "--json"])
    assert code == 0, err
    applied = json.loads(out)
    assert {v["view"] for v in applied["views"]} == set(all_specs())
    code, out, err = run_main(["history", "--view", "user_activity", "--json"])
    assert code == 0, err
    changes = json.loads(out)
    assert {c["object"] for c in changes} == {"user_activity", "user_activity_v3"}  # the family's views
    assert pd.Timestamp(changes[0]["at"]).tzinfo is not None  # ISO 8601 with its zone
    assert isinstance(changes[0]["diff"], list)


def test_remove_takes_view_like_the_other_commands(cli_env):
    assert run_main(["apply"])[0] == 0  # registered and still declared: removal is refused
    by_option = run_main(["remove", "--view", "user_activity"])
    positional = run_main(["remove", "user_activity"])
    assert by_option == positional
    code, _, err = by_option
    assert code == 1 and err.startswith("error: ViewInUseError: ") and "still declared in code" in err
    assert len(err.splitlines()) == 1
    code, _, err = run_main(["remove", "--view", "user_activity", "user_realtime"])
    assert (code, err) == (1, "error: remove: give the view once (--view user_activity or user_realtime)\n")
    code, _, err = run_main(["remove"])
    assert (code, err) == (1, "error: remove needs --view VIEW (a feature view, or its family with --version)\n")


def test_a_failure_is_one_line_with_its_type_and_the_stack_only_when_verbose(cli_env, monkeypatch):
    from feature_platform.cli import reads

    def broken(platform, args):
        raise RuntimeError("the store said no\n  at line 2 of its answer")

    monkeypatch.setattr(reads, "views_command", broken)
    code, out, err = run_main(["views"])
    assert (code, err) == (1, "error: RuntimeError: the store said no; at line 2 of its answer\n")
    for argv in (["views", "--verbose"], ["--verbose", "views"]):
        code, out, err = run_main(argv)
        lines = err.splitlines()
        assert code == 1 and lines[0] == "Traceback (most recent call last):"
        assert "in broken" in err and "RuntimeError: the store said no\n  at line 2 of its answer\n" in err
        assert lines[-1] == "error: RuntimeError: the store said no; at line 2 of its answer"


def cli(settings, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **settings.as_env(), "FEATURE_PLATFORM_SESSIONS_PATH": str(settings.sessions_path)}
    return subprocess.run([sys.executable, "-m", "feature_platform.cli", *args], env=env, capture_output=True,
                          text=True, timeout=300)


def test_materialize_ends_with_a_summary(embedded_settings):
    # Ten days of sessions, then a quiet week: one session on 03-18 says the log covers the days in between.
    later = generate_day(date(2026, 3, 18), 100).head(1)
    write_sessions(embedded_settings.sessions_path,
                   pd.concat([*(generate_day(date(2026, 3, d), 100) for d in range(1, 11)), later]))
    done = cli(embedded_settings, "materialize", "--view", "user_activity", "--start", "2026-03-09", "--end",
               "2026-03-10")
    assert done.returncode == 0, done.stderr
    import feature_platform as fp

    table = fp.FeaturePlatform(embedded_settings).offline_table("user_activity", "2026-03-09", "2026-03-10")
    per_day = table.groupby("event_timestamp").size()
    closing = int((table["sessions_7d"] == 0).sum())
    last = re.fullmatch(r"summary: 2 partitions, ([0-9,]+) offline rows \(([0-9,]+)-([0-9,]+) per day\), "
                        r"([0-9,]+) closing rows, ([0-9.]+)s", done.stdout.splitlines()[-1])
    assert last, done.stdout
    assert [int(n.replace(",", "")) for n in last.groups()[:4]] == [len(table), per_day.min(), per_day.max(), closing]
    assert float(last[5]) > 0

    # The first day whose 7-day window holds no session: every row closes (the entities active the day before).
    again = cli(embedded_settings, "materialize", "--view", "user_activity", "--start", "2026-03-17", "--json")
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["rows"] == summary["closing_rows"] > 0
    assert {k: summary[k] for k in ("view", "partitions", "first", "last")} == {
        "view": "user_activity", "partitions": 1, "first": "2026-03-17", "last": "2026-03-17"}
    assert summary["min_rows_per_day"] == summary["max_rows_per_day"] == summary["rows"]
    assert summary["seconds"] > 0


def test_the_error_line_joins_a_message_of_several_lines_and_is_bounded():
    from feature_platform.cli.failures import LINE_LIMIT, error_line
    from feature_platform.errors import BreakingChangeError, InvalidDateError, ValidationFailedError

    refused = BreakingChangeError("feature view 'a' (v2) would change in place\nnothing was applied")
    assert error_line(refused) == ("error: BreakingChangeError: feature view 'a' (v2) would change in place; "
                                   "nothing was applied")
    failed = ValidationFailedError("user_activity 2026-01-03: column sessions_7d failed ge(0)", view="user_activity",
                                   partition="2026-01-03", failures=None, quarantine_path=None)
    assert error_line(failed) == "error: ValidationFailedError: user_activity 2026-01-03: column sessions_7d failed ge(0)"
    assert error_line(InvalidDateError("end 2026-13-01 is not a day")) == "error: end 2026-13-01 is not a day"
    huge = error_line(RuntimeError("x" * 100_000))
    assert huge == f"error: RuntimeError: {'x' * LINE_LIMIT}...(100000 chars)"

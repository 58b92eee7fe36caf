"""Credentials come only from the environment and never come back out: not in exceptions (message, repr,
traceback with its causes), logs, the Dagster event log and its metadata, CLI output, PostgreSQL tables
or files the platform writes. Run against the real services with real secrets: a PostgreSQL role with a
password (one with a space and a quote, so quoting is exercised too), a private redis-server started
with --requirepass, and a Slack-style webhook URL whose path is a token.

PostgreSQL here trusts 127.0.0.1, so a wrong PostgreSQL password cannot be refused; a wrong port is the
PostgreSQL failure, and a wrong Redis password the authentication failure.
"""

from __future__ import annotations

import logging
import re
import subprocess
import traceback
import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import psycopg
import pytest
import sqlalchemy
from feast import FeatureStore
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from feature_platform import cli
from feature_platform.backends import repo_config
from feature_platform.backends.feast_yaml import config_path
from feature_platform.config import Settings
from feature_platform.defs import alerts
from feature_platform.defs.resources import FeaturePlatformResource
from feature_platform.demo.generator import generate_day
from feature_platform.errors import MaterializationError, StoreUnavailableError
from feature_platform.platform import FeaturePlatform
from feature_platform.redact import MASK, redact, secrets_of, url_origin
from feature_platform_tests.helpers import (
    PrivateRedis,
    free_port,
    services_settings_in,
    write_sessions,
)

ROOT = Path(__file__).resolve().parents[1]
D = date(2026, 4, 10)
FEATURES = ["user_activity:sessions_7d", "user_activity:total_tokens_7d"]


def forms(secrets) -> list[str]:
    """A secret as it could leak: raw or URL-quoted."""
    return sorted({f for s in secrets for f in (s, quote(s, safe=""), quote(s))})


def assert_clean(text: str, secrets, where: str) -> None:
    if any(f in text for f in forms(secrets)):
        pytest.fail(f"a secret appears in {where}", pytrace=False)  # not repeated in the report (CI logs)


def assert_exception_clean(exc: BaseException, secrets) -> None:
    assert_clean(str(exc), secrets, "the exception message")
    assert_clean(repr(exc), secrets, "the exception repr")
    assert_clean("".join(traceback.format_exception(exc)), secrets, "the traceback (with its causes)")


# --- no services needed ---------------------------------------------------------------------------

def test_connection_strings_quote_passwords_and_redaction_masks_them():
    secret = "s3 cr'et/@,x\\y"  # space, quote, URL and conninfo metacharacters
    settings = Settings.from_env({"FEATURE_PLATFORM_PROFILE": "services", "FEATURE_PLATFORM_PG_PASSWORD": secret,
                                  "FEATURE_PLATFORM_REDIS_PASSWORD": "r3dis-secret",
                                  "FEATURE_PLATFORM_ALERT_SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/tok3n"})
    # Parsed back by the drivers to the very same password: nothing breaks or spills into a parse error.
    assert conninfo_to_dict(settings.pg_conninfo())["password"] == secret
    assert sqlalchemy.engine.make_url(settings.pg_sqlalchemy_url()).password == secret
    assert "password" not in conninfo_to_dict(settings.with_(pg_password="").pg_conninfo())
    secrets = secrets_of(settings)
    assert set(secrets) == {secret, "r3dis-secret", "https://hooks.slack.com/services/T/B/tok3n"}
    # Pattern-based masking alone (no known secrets) covers conninfo, URLs and Feast's Redis string.
    config = repo_config(settings)
    for text in (settings.pg_conninfo(), settings.pg_sqlalchemy_url(), config.online_store.connection_string):
        masked = redact(text)
        assert MASK in masked and "r3dis" not in masked and "s3" not in masked and "et/" not in masked, masked
        assert_clean(redact(text, secrets), secrets, "a redacted connection string")
    assert_clean(redact(f"failed: {config!r} {settings.pg_conninfo()}", secrets), secrets, "a redacted repr")
    assert redact("no secret here: host=db port=5432", secrets) == "no secret here: host=db port=5432"
    assert url_origin("https://hooks.slack.com/services/T/B/tok3n?x=1") == f"https://hooks.slack.com/{MASK}"
    # Settings and the Dagster resource never show a secret in their repr.
    assert_clean(repr(settings), secrets, "repr(Settings)")
    assert_clean(repr(FeaturePlatformResource.from_settings(settings)), secrets, "repr(FeaturePlatformResource)")


@pytest.mark.services
def test_a_redis_password_with_commas_and_json_works_through_feast_and_is_masked(tmp_path):
    """Feast's Redis connection string splits on ',' and json-decodes values: the password reaches it escaped,
    so a real redis-server requiring one with commas, quotes, `true` and `null` serves the platform and stock
    Feast alike (it used to be refused with a raw ValueError), and redaction still masks it whole."""
    tag = uuid.uuid4().hex[:8]
    secret = f'a,b "true",null=1e3 {tag} ü\\'
    server = PrivateRedis(secret).start()
    try:
        with services_settings_in(tmp_path) as base:
            settings = Settings.from_env({**base.as_env(), "FEATURE_PLATFORM_REDIS_PORT": str(server.port),
                                          "FEATURE_PLATFORM_REDIS_DB": "0", "FEATURE_PLATFORM_REDIS_PASSWORD": secret})
            assert settings.redis_password == secret
            write_sessions(settings.sessions_path, pd.concat([generate_day(D - timedelta(days=i), 30, seed=3)
                                                              for i in range(8)]))
            platform = FeaturePlatform(settings)
            platform.materialize("user_activity", D)
            users = platform.offline_table("user_activity", D, D)["user_id"].head(3).tolist()
            ours = platform.online_features(FEATURES, [{"user_id": u} for u in users],
                                            now=datetime(2026, 4, 11, 1, tzinfo=timezone.utc))
            assert ours.notna().all().all()
            from feature_platform.backends import feature_store

            store = feature_store(settings)
            theirs = store.get_online_features(features=FEATURES, entity_rows=[{"user_id": u} for u in users]).to_df()
            for ref in FEATURES:
                name = ref.split(":")[1]
                assert theirs[name].astype(ours[name].dtype).tolist() == ours[name].tolist(), name
            connection = repo_config(settings).online_store.connection_string
            assert redact(connection).endswith(f",password={MASK}")
            assert_clean(redact(connection), [secret, tag], "the masked Feast connection string")
            with pytest.raises(StoreUnavailableError) as refused:  # a wrong one fails clearly, unechoed
                FeaturePlatform(settings.with_(redis_password=secret + ",x")).online_features(
                    FEATURES, [{"user_id": users[0]}])
            assert_exception_clean(refused.value, [secret])
    finally:
        server.stop()


def test_a_failing_alert_webhook_is_logged_without_its_token(embedded_settings, caplog):
    token = uuid.uuid4().hex
    url = f"http://127.0.0.1:{free_port()}/services/T0/B0/{token}?k={token}"  # nothing listens there
    settings = embedded_settings.with_(alert_webhook_url=url, alert_slack_webhook_url=url)
    alert = alerts.Alert("stale:v", "open", "v", "v is stale", "2026-04-10T00:00:00+00:00")
    with caplog.at_level(logging.DEBUG):
        alerts.send([alert], settings, logger=logging.getLogger("test_security.alerts"))
    failures = [r for r in caplog.records if "alert webhook" in r.getMessage()]
    assert len(failures) == 2  # both sinks were tried and failed
    assert "http://127.0.0.1:" in failures[0].getMessage()  # where it points is still said
    assert_clean(caplog.text, [token], "the alert log")


# Literal credentials: `password = "x"`, a URL with a password, `--requirepass x`, and (configuration
# files) `PASSWORD: x` / `PASSWORD=x`.
_LITERALS = [
    re.compile(r"""(?i)\b\w*(password|passwd|secret|token)\w*\s*[=:]\s*["'][^"'{}$\s]+["']"""),
    re.compile(r"""(?i)\b[a-z][a-z0-9+.-]*://[^\s/:@"'{}]+:(?!password@)[^\s/@"'{}$*]+@"""),
    re.compile(r"""(?i)--requirepass\s+\\?["']?(?![$"'\\])\S"""),
    re.compile(r"""^\s*[A-Z_]*PASSWORD\s*[:=]\s*(?![\s"'$]|\{env:|$)\S""", re.MULTILINE),
]


def test_no_credential_literal_in_the_code_or_the_deployment_files():
    files = [*(ROOT / "feature_platform").rglob("*.py"), *(ROOT / "deploy").rglob("*.yaml"), ROOT / "dagster.yaml",
             ROOT / "docker-compose.yml", ROOT / "Dockerfile", ROOT / "workspace.yaml"]
    assert len(files) > 20
    hits = [f"{path.relative_to(ROOT)}:{text[:m.start()].count(chr(10)) + 1}: {m.group(0)}"
            for path in files for text in [path.read_text()]
            for pattern in (_LITERALS[:3] if path.suffix == ".py" else _LITERALS) for m in pattern.finditer(text)]
    assert hits == []
    # The patterns do find literals (a scan that cannot fail proves nothing).
    planted = 'pg_password = "hunter22"\nurl = "postgresql://app:hunter22@db/x"\n--requirepass hunter22\nPASSWORD=x\n'
    assert all(p.search(planted) for p in _LITERALS)
    # The committed example env file holds placeholders only, and .env itself is never committed.
    tracked = subprocess.run(["git", "ls-files", "--error-unmatch", ".env"], cwd=ROOT, capture_output=True)
    assert tracked.returncode != 0
    example = (ROOT / ".env.example").read_text()
    values = [line.split("=", 1)[1] for line in example.splitlines() if "=" in line and not line.startswith("#")]
    assert values and all(v == "" or v.startswith("change-me") for v in values)



# The URL password pattern without its lookbehind (quadratic on long runs of letters): the same matches, so the
# same masking, on any text made of the characters that matter to it (no "password=", no known secret).
_PLAIN_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.\-]*://[^:/@\s]*:)[^@\s]*(?=@)", re.IGNORECASE)


@hypothesis_settings(max_examples=300, deadline=None)
@given(st.text(alphabet="aZ1+.-:/@ x", max_size=60))
def test_url_passwords_are_masked_as_the_plain_pattern_masks_them(text):
    assert redact(text) == _PLAIN_URL_PASSWORD.sub(lambda m: m["head"] + MASK, text)


def test_a_long_message_is_redacted_whole():
    text = "x" * 100_000 + " postgresql://u:s3cret@h/db"
    assert redact(text) == "x" * 100_000 + f" postgresql://u:{MASK}@h/db"

# --- against the real services ----------------------------------------------------------------------

@pytest.fixture
def secured(tmp_path, monkeypatch):
    """Services settings whose every credential is real and random; the environment holds them (as deployed)."""
    tag = uuid.uuid4().hex[:10]
    pg_secret, redis_secret, hook_token = f"pg s3cr'et {tag}", f"rd-s3cret-{tag}", f"hook-{tag}"
    server = PrivateRedis(redis_secret).start()  # requiring a password
    role = f"fp_sec_{tag}"
    with services_settings_in(tmp_path) as base:
        with psycopg.connect(base.pg_conninfo("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(pg_secret)))
        try:
            settings = base.with_(pg_user=role, pg_password=pg_secret, redis_port=server.port, redis_db=0,
                                  redis_password=redis_secret,
                                  alert_slack_webhook_url=f"http://127.0.0.1:{free_port()}/services/T0/B0/{hook_token}")
            for name, value in settings.as_env().items():  # e.g. dagster.yaml reads the password by reference
                monkeypatch.setenv(name, value)
            write_sessions(settings.sessions_path,
                           pd.concat([generate_day(D - timedelta(days=i), 60, seed=3) for i in range(9)]))
            yield settings, [pg_secret, redis_secret, hook_token, settings.alert_slack_webhook_url]
        finally:
            server.stop()
            with psycopg.connect(base.pg_conninfo("postgres"), autocommit=True) as conn:
                for db in (base.pg_db, base.dagster_pg_db):  # owned by the role: dropped before it
                    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def postgres_hits(settings: Settings, db: str, secrets) -> list[str]:
    """Tables of `db` holding a secret, as text or inside bytea (e.g. serialized protos)."""
    from feature_platform.stores.postgres import connect

    hits = []
    with connect(settings.with_(pg_user="postgres", pg_password=""), db) as conn:
        columns = conn.execute("SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns "
                               "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')").fetchall()
        for schema, table, column, dtype in columns:
            ident = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))
            col = sql.Identifier(column)
            for form in forms(secrets):
                if dtype == "bytea":
                    query = sql.SQL("SELECT 1 FROM {} WHERE position(convert_to(%s, 'UTF8') IN {}) > 0 LIMIT 1")
                else:
                    query = sql.SQL("SELECT 1 FROM {} WHERE strpos({}::text, %s) > 0 LIMIT 1")
                if conn.execute(query.format(ident, col), (form,)).fetchone():
                    hits.append(f"{db}.{schema}.{table}.{column}")
    return hits


@pytest.mark.services
def test_runs_reads_failures_and_the_cli_leave_no_secret_behind(secured, caplog, capsys, monkeypatch):
    settings, secrets = secured
    wrong_redis = "wrong-" + secrets[1]  # a mistyped password is as secret as the right one
    secrets = [*secrets, wrong_redis]
    caplog.set_level(logging.DEBUG)
    platform = FeaturePlatform(settings)
    platform.materialize("user_activity", D)  # a real run: Feast registry, offline table, online sync
    users = platform.offline_table("user_activity", D, D)["user_id"].head(3).tolist()
    assert users
    got = platform.online_features(FEATURES, [{"user_id": u} for u in users], with_metadata=True,
                                   now=datetime(2026, 4, 11, 1, tzinfo=timezone.utc))
    assert (got["sessions_7d__status"] == "present").all()

    # Stock Feast, through the feature_store.yaml the apply wrote, authenticates with the passwords of the
    # environment (the registry through the role's password, the online read through Redis's).
    store = FeatureStore(repo_path=str(config_path(settings).parent))
    assert "user_activity" in {fv.name for fv in store.list_feature_views()}
    assert store.get_online_features(FEATURES, [{"user_id": u} for u in users]).to_dict()["user_id"] == users

    failures: list[BaseException] = []
    # Redis refuses the password: the run fails (recorded in the event log) and so does a read.
    bad_redis = FeaturePlatform(settings.with_(redis_password=wrong_redis))
    with pytest.raises(MaterializationError) as run_failed:
        bad_redis.materialize("user_activity", D)
    failures.append(run_failed.value)
    with pytest.raises(StoreUnavailableError, match="Redis at 127.0.0.1:.* is unreachable") as read_failed:
        bad_redis.online_features(FEATURES, [{"user_id": users[0]}])
    failures.append(read_failed.value)
    # Nothing listens on the ports: PostgreSQL and Redis unreachable.
    with pytest.raises(StoreUnavailableError, match="PostgreSQL at 127.0.0.1:.* is unreachable") as pg_failed:
        FeaturePlatform(settings.with_(pg_port=free_port())).offline_table("user_activity", D, D)
    failures.append(pg_failed.value)
    with pytest.raises(StoreUnavailableError, match="Redis at 127.0.0.1:.* is unreachable") as redis_failed:
        FeaturePlatform(settings.with_(redis_port=free_port())).online_features(FEATURES, [{"user_id": users[0]}])
    failures.append(redis_failed.value)
    for exc in failures:
        assert_exception_clean(exc, secrets)

    # The CLI, configured by the environment: a read that works and one that fails.
    capsys.readouterr()
    assert cli.main(["online", "--view", "user_activity", "--entity", str(users[0])]) == 0
    monkeypatch.setenv("FEATURE_PLATFORM_REDIS_PASSWORD", wrong_redis)
    assert cli.main(["online", "--view", "user_activity", "--entity", str(users[0])]) == 1
    out = capsys.readouterr()
    assert "sessions_7d" in out.out and "error:" in out.err and "Redis" in out.err
    assert_clean(out.out + out.err, secrets, "the CLI output")

    # The Dagster event log of every run (messages, errors with their causes, materialization metadata).
    from dagster import AssetKey
    from dagster._serdes import serialize_value

    instance = platform.instance()
    runs = instance.get_runs()
    assert {r.status.value for r in runs} == {"SUCCESS", "FAILURE"}
    materializations = instance.fetch_materializations(AssetKey("user_activity"), limit=10).records
    assert materializations and materializations[0].asset_materialization.metadata
    for record in materializations:
        assert_clean(serialize_value(record.asset_materialization.metadata), secrets, "materialization metadata")
    for run in runs:
        events = instance.all_logs(run.run_id)
        assert events
        assert_clean("\n".join(serialize_value(e) for e in events), secrets, f"the event log of run {run.run_id}")
    assert_clean(caplog.text, secrets, "the captured logs")

    # At rest: the platform's and Dagster's PostgreSQL databases, and every file under FEATURE_PLATFORM_HOME
    # (dagster.yaml and Feast's feature_store.yaml keep each password as a reference to its variable).
    assert postgres_hits(settings, settings.pg_db, secrets) == []
    assert postgres_hits(settings, settings.dagster_pg_db, secrets) == []
    files = [p for p in settings.home.rglob("*") if p.is_file()]
    assert {"dagster.yaml", "feature_store.yaml"} <= {p.name for p in files}
    leaking = [str(p.relative_to(settings.home)) for p in files
               if any(f.encode() in p.read_bytes() for f in forms(secrets))]
    assert leaking == []
    instance.dispose()

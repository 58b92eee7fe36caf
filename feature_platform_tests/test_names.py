"""One rule for every declared name (`spec.NAME`), used by the specs and by the facade alike."""

from __future__ import annotations

from datetime import timedelta

import pytest

from feature_platform.spec import Agg, Entity, FeatureViewSpec, Field, SpecError, WindowAggregation, is_name


def _view(name: str) -> FeatureViewSpec:
    return FeatureViewSpec(
        name=name, entity=Entity("user", "user_id"), fields=(Field("n", "int64"),), ttl=timedelta(days=1),
        owner="t", freshness_sla=timedelta(days=1), version=1, description="",
        aggregation=WindowAggregation("sessions", "event_timestamp", timedelta(days=1), (Agg("n", "count", "session_id"),)))


def test_every_declared_name_follows_the_one_rule():
    """Snake_case of at most 63 characters (PostgreSQL's identifier limit), matched whole: what the facade
    accepts as a name is exactly what a spec may declare."""
    assert is_name("a" * 63) and not is_name("a" * 64)
    assert not is_name("abc\n") and not is_name("Abc") and not is_name("1a") and not is_name(None)
    _view("v" * 63)
    for bad in ("v" * 64, "user_activity\n"):
        with pytest.raises(SpecError, match="snake_case"):
            _view(bad)

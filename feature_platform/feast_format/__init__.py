"""Feast's storage and answer formats, written and read by the platform itself: the only place that knows them.

- codec.py: Feast's Redis/SQLite key and value encodings (entity keys, `feast.types.Value`, timestamps), a
  column at a time;
- redis_features.py: the Redis online store's writes (newest-wins, in Lua) and reads, in Feast's layout;
- sqlite_features.py: the SQLite online store's writes (newest-wins upserts), in Feast's table layout;
- serving.py: the JSON document of Feast's `/get-online-features`.

Verified against Feast >=0.67.0,<0.68.0 (`version.VERIFIED_FEAST`; feast==0.67.0 is pinned), by contract tests
that compare each format with stock Feast's own output (feature_platform_tests/feast_format/). The first use of
this package checks the installed Feast and warns (`FeastVersionWarning`) outside that range. Feast's private
names appear here and nowhere else in the platform (feature_platform_tests/test_architecture.py).
"""

from feature_platform.feast_format.version import FeastVersionWarning, check_feast_version

__all__ = ["FeastVersionWarning", "check_feast_version"]

check_feast_version()

"""The one place for each library's internals the platform relies on (dagster_internals.py, redis_internals.py),
each stating the versions it was checked against: an upgrade that moves them breaks here, not all over."""

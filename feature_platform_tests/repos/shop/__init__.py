"""shop: a second domain for the tests. Orders in a PostgreSQL table keyed by a string customer id, page views
as a hive-partitioned Parquet dataset keyed by an integer visitor id; windows of 30 and 3 days."""

"""Benchmarks of the feature platform: one command, `python -m benchmarks.run`; not part of the tests.

Modules: `data` (seeded, cached benchmark data), `measure` (one measurement per fresh process:
wall time and peak RSS), `report` (results.json and report.md, one section per benchmark), one
module per benchmark (`training_set`), and `run` (the CLI).
"""

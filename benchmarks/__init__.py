"""Benchmarks of the feature platform: one command, `python -m benchmarks.run`; not part of the tests.

Modules: `data` (seeded, cached benchmark data), `measure` (one measurement per fresh process:
wall time and peak RSS), `report` (results.json and report.md, one section per benchmark), one
module per benchmark (`training_set`), and `run` (the CLI).
"""

import sys
from pathlib import Path

# The example feature repository the benchmarks measure, importable as `chat_activity` (as its loader does).
_EXAMPLES = str(Path(__file__).resolve().parents[1] / "examples")
if _EXAMPLES not in sys.path:
    sys.path.insert(0, _EXAMPLES)

# Imported before anything loads pyarrow, as a deployment's processes (the CLI, Dagster's code server and run
# workers) import it: every measured process, platform and baselines alike, allocates memory as a
# deployment does (docs/configuration.md, "Memory allocators").
import feature_platform  # noqa: E402,F401

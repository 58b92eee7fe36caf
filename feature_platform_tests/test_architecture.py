"""Architecture ratchets (issue 20): the package's structure can only get better.

Each check scans the source (architecture_scan.py, `ast` only) and compares what it finds with an allow-list of
today's exceptions, exactly: something new fails (fix the code), and so does an entry no longer found (a stage of
issue 20 landed: delete the entry). Each entry names the stage of issue 20's refactor plan (S1-S12) that removes it.

1. No import cycles between modules beyond ALLOWED_CYCLES.
2. Layers (LAYERS, bottom to top). A module may import modules of its own layer and of those below, never above,
   except ALLOWED_UPWARD_IMPORTS. A module's layer is that of its top-level name under feature_platform/ (`compute`
   for compute/engine.py, `__init__` for the package's own __init__.py). The names the plan introduces are placed
   already; any other new name fails the test until it is placed.
3. Places that decide on the deployment profile, per file, only where ALLOWED_PROFILE_DECISIONS says. Target: one,
   `match settings.profile` in backends/__init__.py (PROFILE_SWITCH), which may decide once.
4. Private names of libraries (Feast, Dagster, redis-py, ...) only in the files of ALLOWED_PRIVATE_NAMES (package)
   and ALLOWED_PRIVATE_NAMES_IN_TESTS. Target: only under PRIVATE_NAMES_HOMES.
5. Dtype tables (dict literals keyed by, or mapping to, the spec's dtype names) only in dtypes.py, beyond
   ALLOWED_DTYPE_MAPS.
6. Import weight: the package, the CLI's module and feature_platform.spec import none of Feast, Dagster, pandas,
   DuckDB and PySpark (a subprocess each).
"""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from feature_platform_tests.architecture_scan import (
    cycles,
    dtype_maps,
    import_graph,
    library_private_names,
    modules_of,
    profile_decisions,
)

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "feature_platform"
TESTS = ROOT / "feature_platform_tests"

LAYERS = (
    {"errors", "vocabulary", "dtypes", "util", "redact", "compat"},  # leaves: they import nothing of the package
    {"spec", "settings", "config"},  # what a view is, how the platform is configured
    {"catalog", "repo", "features", "arguments"},  # the feature repository, its columns; the API's argument checks
    {"feast_format", "sources", "compute", "demo"},  # Feast's formats, raw sources (the demo writes one), computation
    {"backends", "stores"},  # storage, one bundle per profile
    {"derive"},  # Feast and Pandera objects derived from a spec
    {"runtime", "pipeline", "ingest", "push", "push_rows", "training", "freshness", "skew", "request_time", "versioning",
     "online_reads"},  # what runs on the backends
    {"defs", "definitions"},  # Dagster
    {"platform"},  # the facade
    {"serving", "cli", "__init__"},  # entry points
)

# Module names below are relative to feature_platform/.
ALLOWED_CYCLES: set[frozenset[str]] = set()  # none left

ALLOWED_UPWARD_IMPORTS = {
    ("compute.spark_point_in_time", "stores.schema"),  # S7b: the offline store's to_spark
}

DTYPE_TABLE = "dtypes.py"
ALLOWED_DTYPE_MAPS = {  # file -> number of dict literals
    "push.py": 1,  # the parser of each dtype's pushed values: rules of the push path, not a type mapping
}

PROFILE_SWITCH = "backends/__init__.py"
ALLOWED_PROFILE_DECISIONS = {  # file -> number of places
}

PRIVATE_NAMES_HOMES = ("feast_format/", "compat/")  # in the package and in the tests
ALLOWED_PRIVATE_NAMES = {  # file -> names
}
ALLOWED_PRIVATE_NAMES_IN_TESTS = {  # file -> names; "stays": a test that checks against the library's own code
    "test_backfill.py": {  # stays: pins the tags compat/dagster_internals.py sends
        "dagster/asset_partition_range_end",
        "dagster/asset_partition_range_start",
    },
    "test_deploy_config.py": {  # stays: Dagster's own loader and dagster dev's folder name
        "dagster._cli.utils.TMP_DAGSTER_HOME_PREFIX",
        "dagster._core.instance.config.dagster_instance_config",
    },
    "test_scaling_configs.py": {  # stays: the shipped configurations, validated by Dagster's and Feast's own code
        "dagster._config.process_config",
        "dagster._config.resolve_to_config_type",
        "dagster._core.instance.config.dagster_instance_config",
        "dagster._core.run_coordinator.QueuedRunCoordinator",  # S7e: `run_queue:` in the shipped files
    },
    "test_security.py": {"dagster._serdes.serialize_value"},  # stays: what Dagster stores must hold no secret
}


def ratchet(found: Mapping, allowed: set | Mapping, table: str, detail: Mapping | None = None) -> list[str]:
    """What differs between the scan and an allow-list that must equal it (a set: keys only; a mapping: values
    too). Found and not listed, or more of it: the architecture got worse, fix the code. Listed and no longer
    found: a stage landed, delete the entry (the allow-lists only shrink)."""
    listed = allowed if isinstance(allowed, Mapping) else dict.fromkeys(allowed)
    detail = detail or {}
    problems = []
    for key in sorted(found.keys() | listed.keys(), key=repr):
        shown = detail.get(key, found.get(key))
        more = f" ({sorted(shown) if isinstance(shown, set) else shown})" if shown is not None else ""
        if key not in listed:
            problems.append(f"{key!r}: new, not in {table}{more}: remove it (or justify an entry)")
        elif key not in found:
            problems.append(f"{key!r}: in {table} but not found{more}: if a stage removed it, delete the entry "
                            "(the list only shrinks)")
        elif isinstance(allowed, Mapping) and found[key] != listed[key]:
            have, may = found[key], listed[key]
            change = (f"new {sorted(have - may)}, gone {sorted(may - have)}" if isinstance(have, set)
                      else f"{have} found, {may} listed")
            more = f" ({detail[key]})" if key in detail else ""
            problems.append(f"{key!r}: {change} in {table}{more}: remove what is new, shrink the entry to what is left")
    return problems


def short(module: str) -> str:
    return module.partition(".")[2] or "__init__"


def layer_of(module: str) -> int:
    """The layer of a module name relative to the package (`compute.engine`, `__init__`)."""
    top = module.partition(".")[0]
    found = [i for i, names in enumerate(LAYERS) if top in names]
    assert found, f"{top!r} is in no layer: place it in LAYERS (test_architecture.py), bottom to top"
    return found[0]


def upward_imports(graph: Mapping[str, Mapping[str, int]]) -> dict[tuple[str, str], str]:
    """(importer, imported) -> `line N` for every import of a module of a higher layer (names as in `layer_of`)."""
    return {(a, b): f"line {line}" for a, edges in graph.items() for b, line in edges.items()
            if layer_of(b) > layer_of(a)}


@functools.cache
def package_graph() -> dict[str, dict[str, int]]:
    graph = import_graph(modules_of(PACKAGE))
    return {short(a): {short(b): line for b, line in edges.items()} for a, edges in graph.items()}


@functools.cache
def sources(directory: Path, skip: tuple[str, ...] = ()) -> dict[str, ast.Module]:
    return {p.relative_to(directory).as_posix(): ast.parse(p.read_text(), str(p))
            for p in sorted(directory.rglob("*.py")) if p.name not in skip}


def private_names(directory: Path, skip: tuple[str, ...] = ()) -> dict[str, set[str]]:
    found = {name: library_private_names(tree) for name, tree in sources(directory, skip).items()
             if not name.startswith(PRIVATE_NAMES_HOMES)}
    return {name: names for name, names in found.items() if names}


def test_no_import_cycles_beyond_the_allowed():
    graph = package_graph()
    found = cycles(graph)
    detail = {c: ", ".join([f"{a} -> {b} (line {graph[a][b]})" for a in sorted(c) for b in sorted(graph[a]) if b in c]
                           [:30]) for c in found}
    detail |= {c: "it is inside a larger, new cycle" for c in ALLOWED_CYCLES - found if any(c < f for f in found)}
    problems = ratchet(dict.fromkeys(found), ALLOWED_CYCLES, "ALLOWED_CYCLES", detail)
    assert not problems, "\n".join(problems)


def test_no_import_from_a_higher_layer_beyond_the_allowed():
    for module in package_graph():
        layer_of(module)  # every module is placed, imported or not
    found = upward_imports(package_graph())
    problems = ratchet(found, ALLOWED_UPWARD_IMPORTS, "ALLOWED_UPWARD_IMPORTS")
    assert not problems, "\n".join(problems)


def test_the_profile_is_decided_only_where_allowed():
    places = {name: lines for name, tree in sources(PACKAGE).items() if (lines := profile_decisions(tree))}
    found = {name: len(lines) for name, lines in places.items() if not (name == PROFILE_SWITCH and len(lines) == 1)}
    problems = ratchet(found, ALLOWED_PROFILE_DECISIONS, "ALLOWED_PROFILE_DECISIONS",
                       {name: "; ".join(lines) for name, lines in places.items()})
    assert not problems, "\n".join(problems)


def test_dtype_tables_only_in_the_dtype_table():
    found = {name: len(lines) for name, tree in sources(PACKAGE).items()
             if name != DTYPE_TABLE and (lines := dtype_maps(tree))}
    problems = ratchet(found, ALLOWED_DTYPE_MAPS, "ALLOWED_DTYPE_MAPS")
    assert not problems, "\n".join(problems)
    assert dtype_maps(sources(PACKAGE)[DTYPE_TABLE]), f"{DTYPE_TABLE} holds the table"


def test_private_names_of_libraries_only_where_allowed():
    problems = ratchet(private_names(PACKAGE), ALLOWED_PRIVATE_NAMES, "ALLOWED_PRIVATE_NAMES")
    assert not problems, "\n".join(problems)


def test_private_names_of_libraries_in_the_tests_only_where_allowed():
    found = private_names(TESTS, skip=("architecture_scan.py", Path(__file__).name))  # they name them to find them
    problems = ratchet(found, ALLOWED_PRIVATE_NAMES_IN_TESTS, "ALLOWED_PRIVATE_NAMES_IN_TESTS")
    assert not problems, "\n".join(problems)


# The online path (reads, serving, request-time features) and the skew check resolve features through features.py;
# none of them may reach training sets (which build on the same resolution, not the other way round).
WITHOUT_TRAINING_SETS = ("features", "request_time", "skew", "stores.online", "online_reads", "serving.feature_store",
                         "serving.access")


def reachable(graph: Mapping[str, Mapping[str, int]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for b in graph.get(todo.pop(), {}):
            if b not in seen:
                seen.add(b)
                todo.append(b)
    return seen


def test_online_reads_and_the_skew_check_do_not_import_training_sets():
    graph = package_graph()
    found = {module: "training" in reachable(graph, module) for module in WITHOUT_TRAINING_SETS}
    assert found == dict.fromkeys(WITHOUT_TRAINING_SETS, False)


# Imports `argv[1]` (comma-separated modules) and exits with 3 at the first execution of a module named in `argv[2]`
# (its import chain through `argv[3]`, the package directory, on stdout). A loader that stops the process, not a
# finder: `importlib.util.find_spec` probes that never execute the module do not count.
IMPORT_PROBE = """
import importlib.abc, importlib.machinery, os, sys, traceback
modules, forbidden, package = sys.argv[1].split(","), set(sys.argv[2].split(",")), sys.argv[3]

class Stop(importlib.abc.Loader):
    def create_module(self, spec):
        return None

    def exec_module(self, module):
        chain = [f"{os.path.relpath(f.filename, os.path.dirname(package))}:{f.lineno}"
                 for f in traceback.extract_stack() if os.path.abspath(f.filename).startswith(package + os.sep)]
        print(f"{module.__name__} is imported by " + " -> ".join(chain), flush=True)
        os._exit(3)

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        spec = importlib.machinery.PathFinder.find_spec(name, path) if name in forbidden else None
        if spec is not None:
            spec.loader = Stop()
        return spec

if forbidden & set(sys.modules):
    print(f"{sorted(forbidden & set(sys.modules))} are loaded at start-up", flush=True)
    os._exit(3)
sys.meta_path.insert(0, Refuse())
for module in modules:
    __import__(module)
if forbidden & set(sys.modules):
    print(f"{sorted(forbidden & set(sys.modules))} are in sys.modules", flush=True)
    os._exit(3)
"""
FORBIDDEN_IMPORTED = 3


HEAVY_LIBRARIES = ("feast", "dagster", "pandas", "duckdb", "pyspark")  # seconds to import, only where used


def probe_imports(modules: tuple[str, ...], forbidden: tuple[str, ...], cwd: Path, package: Path):
    """Runs IMPORT_PROBE with this interpreter (the venv's) in `cwd`, so `package` is the checkout's own."""
    result = subprocess.run([sys.executable, "-c", IMPORT_PROBE, ",".join(modules), ",".join(forbidden), str(package)],
                            cwd=cwd, capture_output=True, text=True, timeout=300)
    if result.returncode not in (0, FORBIDDEN_IMPORTED):
        pytest.fail(f"importing {modules} failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
    return result


@pytest.mark.parametrize(("modules", "forbidden"), [
    pytest.param(("feature_platform.cli", "feature_platform.spec"), HEAVY_LIBRARIES, id="cli-and-spec"),
    pytest.param(("feature_platform.spec",), ("pandas",), id="spec-without-pandas"),
    pytest.param(("feature_platform",), HEAVY_LIBRARIES, id="package"),
])
def test_light_modules_do_not_import_heavy_libraries(modules, forbidden):
    result = probe_imports(modules, forbidden, ROOT, PACKAGE)
    imported = result.returncode == FORBIDDEN_IMPORTED
    assert not imported, result.stdout.strip()


# The checks above can fail: each scanner and the ratchet on small inputs with every case they must catch.

def write_package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root / next(iter(files)).partition("/")[0]


def test_import_graph_counts_function_level_relative_and_submodule_imports_not_type_checking(tmp_path):
    package = write_package(tmp_path, {
        "pkg/__init__.py": "VERSION = 1\n",
        "pkg/a.py": "import pkg.b\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import d\n"
                    "else:\n    import json\n\ndef f():\n    from pkg import c\n",
        "pkg/b.py": "from . import a\n",
        "pkg/c.py": "",
        "pkg/d.py": "import pkg.a.f\n",
        "pkg/sub/__init__.py": "from .x import X\nfrom .. import c\n",
        "pkg/sub/x.py": "from ..a import f\nfrom pkg import VERSION\nimport os.path\nX = 1\n",
    })
    graph = import_graph(modules_of(package))
    assert graph == {"pkg": {}, "pkg.a": {"pkg.b": 1, "pkg.c": 9}, "pkg.b": {"pkg.a": 1}, "pkg.c": {},
                     "pkg.d": {"pkg.a": 1}, "pkg.sub": {"pkg.sub.x": 1, "pkg.c": 2},
                     "pkg.sub.x": {"pkg.a": 1, "pkg": 2}}
    assert cycles(graph) == {frozenset({"pkg.a", "pkg.b"})}  # d -> a, but a -> d only for the type checker
    graph["pkg"]["pkg.sub.x"] = 1
    assert cycles(graph) == {frozenset({"pkg.a", "pkg.b"}), frozenset({"pkg", "pkg.sub.x"})}


def test_ratchet_fails_on_anything_new_and_on_entries_no_longer_found():
    assert ratchet({"a": "x"}, {"a"}, "T") == []
    assert ratchet({"a": 2, "b": {"n"}}, {"a": 2, "b": {"n"}}, "T") == []
    new, gone, more, fewer, names = (ratchet({"a": 1}, {}, "T"), ratchet({}, {"a"}, "T"),
                                     ratchet({"a": 2}, {"a": 1}, "T"), ratchet({"a": 1}, {"a": 2}, "T"),
                                     ratchet({"a": {"n", "m"}}, {"a": {"n", "o"}}, "T"))
    assert "new, not in T" in new[0] and "delete the entry" in gone[0]
    assert "2 found, 1 listed" in more[0] and "1 found, 2 listed" in fewer[0]
    assert "new ['m'], gone ['o']" in names[0]


def test_imports_from_a_higher_layer_are_found_and_unplaced_names_refused():
    graph = {"spec": {"errors": 1}, "compute.engine": {"spec": 2, "platform": 7, "compute.drift": 3}}
    assert upward_imports(graph) == {("compute.engine", "platform"): "line 7"}
    with pytest.raises(AssertionError, match="'newthing' is in no layer"):
        upward_imports({"spec": {"newthing.x": 1}})


def test_profile_decisions_are_found_in_every_form_and_display_is_not():
    decides = [
        "settings.profile == 'services'", "profile != 'embedded'", "self.settings.profile in ('services',)",
        "'services' if runtime.settings.profile == 'services' else 'x'", "{'embedded': 1}[settings.profile]",
        "BACKENDS.get(settings.profile)", "getattr(module, settings.profile)",
        "online.redis is not None", "self.redis is None", "(self.redis or self.sqlite).write(spec, rows)",
        "store.kind == 'parquet'", "offline.kind in ('postgres', 'x')",
    ]
    for code in decides:
        assert len(profile_decisions(ast.parse(code))) == 1, code
    assert len(profile_decisions(ast.parse("match settings.profile:\n    case 'embedded':\n        pass\n"))) == 1
    assert len(profile_decisions(ast.parse("if self.sqlite:\n    pass\n"))) == 1
    shown = [
        "f'FeaturePlatform(profile={self.settings.profile!r})'", "{'status': 'ok', 'profile': settings.profile}",
        "print(f'online: {platform.settings.profile} profile')", "Settings(profile=profile)",
        "profile not in ('embedded', 'services')",  # validation accepts every profile: it decides nothing
        "dtype.kind == 'f'", "c.kind == 'field_added'", "self.redis = self.sqlite = None", "x is None",
    ]
    for code in shown:
        assert profile_decisions(ast.parse(code)) == [], code


def test_dtype_maps_are_found_keyed_by_or_mapping_to_dtype_names_and_nothing_else():
    maps = [
        '{"int64": pa.int64(), "float32": pa.float32()}', '{"int64": "Int64", "string": "object", "x": 1}',
        '{"Int64": "int64", "Float32": "float32"}', 'f({"string": str, "int64": int}[dtype])',
    ]
    for code in maps:
        assert dtype_maps(ast.parse(code)) == [1], code
    others = ['{"int64": 1}', 'dtype in ("float32", "float64")', '{"status": "present", "kind": "int64"}',
              '{"name": "x", "dtype": "int64"}', 'dict(int64=1, float32=2)']
    for code in others:
        assert dtype_maps(ast.parse(code)) == [], code


def test_private_names_of_libraries_are_found_in_every_form():
    code = """
import dagster as dg
import feast
import dagster._core.storage as storage
from dagster._core.launcher import WorkerStatus
from feast.feature_server_utils import _STATUS_NAMES, public_name
from feast.infra.online_stores.redis import RedisOnlineStore
from redis import Redis
import pandas as pd
import os

dg._core.events.x
feast.infra._private.y
dg.core.run_coordinator
RedisOnlineStore._parse_connection_string(s)
Redis._internal()
pd._libs.lib
_STATUS_NAMES[1]
store._get_provider()
connection.send_packed_command(args)
tags = {"dagster/asset_partition_range_start": 1}
module = "dagster.core.run_coordinator"
"""
    assert library_private_names(ast.parse(code)) == {
        "dagster._core.storage", "dagster._core.launcher.WorkerStatus", "feast.feature_server_utils._STATUS_NAMES",
        "dagster._core", "feast.infra._private", "dagster.core",
        "feast.infra.online_stores.redis.RedisOnlineStore._parse_connection_string", "redis.Redis._internal",
        "pandas._libs", "._get_provider", ".send_packed_command", "dagster/asset_partition_range_start",
        "dagster.core.run_coordinator",
    }
    clean = "import dagster as dg\nfrom feast import FeatureStore\nimport os\nos._exit(0)\nself._cache\n" \
            "dg.AssetKey.__name__\nFeatureStore(repo_path=p).get_online_features\ndef _helper(): pass\n"
    assert library_private_names(ast.parse(clean)) == set()


def test_import_probe_stops_at_a_forbidden_import_and_names_its_chain(tmp_path):
    package = write_package(tmp_path, {"probed/__init__.py": "import json\nfrom probed import inner\n",
                                       "probed/inner.py": "import importlib.util\nimportlib.util.find_spec('csv')\n"
                                                          "import colorsys\n"})
    refused = probe_imports(("probed",), ("colorsys", "csv"), tmp_path, package)
    assert refused.returncode == FORBIDDEN_IMPORTED  # the find_spec probe of csv did not count
    assert refused.stdout.strip() == "colorsys is imported by probed/__init__.py:2 -> probed/inner.py:3"
    assert probe_imports(("probed",), ("csv",), tmp_path, package).returncode == 0

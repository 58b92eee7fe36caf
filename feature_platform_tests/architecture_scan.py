"""What test_architecture.py measures, read from the source with `ast`: nothing here imports the code it reads.

- `import_graph`: module -> {module of the same package it imports: line of the first such import}. Imports at any
  depth count (inside functions too), those under `if TYPE_CHECKING:` do not. `from pkg import sub` is an edge to the
  submodule `pkg.sub`, `from pkg import name` (not a module) one to `pkg`. The parent packages Python imports first
  are not edges (every module would depend on its package's `__init__`): what that costs is measured by importing.
- `cycles`: the import graph's strongly connected components.
- `profile_decisions`: the expressions that pick behaviour by deployment profile.
- `library_private_names`: the private names of libraries (Feast, Dagster, redis-py, ...) a file uses.
- `dtype_maps`: dict literals keyed by (or mapping to) the spec's dtype names: a table of what a dtype is somewhere.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

PROFILES = frozenset({"embedded", "services"})
BACKEND_KINDS = frozenset({"parquet", "postgres", "redis", "sqlite"})  # `store.kind == "parquet"` is a profile test
ONE_PROFILE_ATTRIBUTES = frozenset({"redis", "sqlite"})  # the online store sets one of them, per profile
# Private names the AST cannot tie to a library import: methods of Feast objects and redis-py connection internals.
KNOWN_PRIVATE = frozenset({
    "_mmh3", "_redis_key", "_STATUS_NAMES", "_float_to_native", "_timestamp_to_str",
    "_get_provider", "_get_conn", "_parse_connection_string",
    "get_connection", "send_packed_command", "read_response",
})
PRIVATE_STRINGS = ("dagster/asset_partition_range_", "dagster.core.", "dagster._")  # Dagster's internal tags, modules
OWN_PACKAGES = frozenset({"feature_platform", "feature_platform_tests", "benchmarks"})  # the rest are libraries
DTYPE_NAMES = frozenset({"int64", "float32", "float64", "string", "bool"})  # spec.DType


def modules_of(package_dir: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package in `package_dir` (a package is its __init__)."""
    found = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = path.relative_to(package_dir.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def runtime_imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement that runs when its code runs: all but those under `if TYPE_CHECKING:`."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from runtime_imports(ast.Module(body=node.orelse, type_ignores=[]))
        else:
            yield from runtime_imports(node)


def _owner(name: str, modules: dict[str, Path]) -> str | None:
    """The module `name` is or lies in (`a.b.c` -> `a.b` when `a.b.c` is an attribute), None outside the package."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imported_modules(module: str, node: ast.Import | ast.ImportFrom, modules: dict[str, Path]) -> set[str]:
    if isinstance(node, ast.Import):
        return {owner for alias in node.names if (owner := _owner(alias.name, modules))}
    base = node.module or ""
    if node.level:  # relative to the importer's package (the module itself when it is a package's __init__)
        package = module.split(".") if modules[module].name == "__init__.py" else module.split(".")[:-1]
        base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
    found = set()
    for alias in node.names:
        owner = f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else _owner(base, modules)
        if owner:
            found.add(owner)
    return found


def import_graph(modules: dict[str, Path]) -> dict[str, dict[str, int]]:
    graph: dict[str, dict[str, int]] = {}
    for module, path in modules.items():
        edges = graph[module] = {}
        for node in runtime_imports(ast.parse(path.read_text(), str(path))):
            for target in imported_modules(module, node, modules) - {module}:
                edges[target] = min(edges.get(target, node.lineno), node.lineno)
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> set[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = set()

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = {stack.pop()}
            while v not in component:
                component.add(stack.pop())
            if len(component) > 1:
                found.add(frozenset(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def _names_profile(node: ast.expr) -> bool:
    return (isinstance(node, ast.Name) and node.id == "profile") or (
        isinstance(node, ast.Attribute) and node.attr == "profile")


def _strings(node: ast.expr) -> set:
    if isinstance(node, ast.Constant):
        return {node.value}
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return {e.value for e in node.elts if isinstance(e, ast.Constant)}
    return set()


def _one_profile_attribute(node: ast.expr) -> bool:
    return isinstance(node, ast.Attribute) and node.attr in ONE_PROFILE_ATTRIBUTES


def _decides(node: ast.AST) -> bool:
    if isinstance(node, ast.Match):
        return _names_profile(node.subject)
    if isinstance(node, ast.Subscript):  # {"embedded": a, "services": b}[settings.profile]
        return _names_profile(node.slice)
    if isinstance(node, ast.Call) and node.args:  # table.get(settings.profile), getattr(module, settings.profile)
        named = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        return named in ("get", "getattr") and any(map(_names_profile, node.args))
    if isinstance(node, ast.Compare):
        operands = [node.left, *node.comparators]
        if any(map(_names_profile, operands)):  # checking it is one of all the profiles validates, does not decide
            return not any(_strings(o) == PROFILES for o in operands)
        if any(isinstance(o, ast.Attribute) and o.attr == "kind" for o in operands):
            return any(_strings(o) & BACKEND_KINDS for o in operands)
        return any(map(_one_profile_attribute, operands)) and any(_strings(o) == {None} for o in operands)
    if isinstance(node, ast.BoolOp):  # (self.redis or self.sqlite).write(...)
        return any(map(_one_profile_attribute, node.values))
    if isinstance(node, (ast.If, ast.IfExp, ast.While)):  # if self.redis: ...
        return _one_profile_attribute(node.test)
    return False


def profile_decisions(tree: ast.AST) -> list[str]:
    """`line: expression` for each place that picks behaviour by profile: compares `profile` (or `.profile`) with a
    profile name, matches or indexes on it, compares a store's `kind` with a backend kind, or tests which of the
    online store's profile-specific attributes (`.redis`, `.sqlite`) is set. Showing the profile decides nothing."""
    places = sorted((node for node in ast.walk(tree) if _decides(node)), key=lambda n: (n.lineno, n.col_offset))
    return [f"{node.lineno}: " + (f"match {ast.unparse(node.subject)}" if isinstance(node, ast.Match)
                                  else ast.unparse(node))[:80] for node in places]


def _is_library(module: str) -> bool:
    top = module.partition(".")[0]
    return bool(top) and top not in sys.stdlib_module_names and top not in OWN_PACKAGES


def _private(dotted: str) -> bool:
    parts = dotted.split(".")
    return parts[:2] == ["dagster", "core"] or parts[-1] in KNOWN_PRIVATE or any(
        p.startswith("_") and not p.endswith("__") for p in parts)


def _attribute_path(node: ast.Attribute) -> tuple[str, list[str]] | None:
    """`dg._core.x` -> ("dg", ["_core", "x"]); None when the chain does not start at a name."""
    attrs = []
    while isinstance(node, ast.Attribute):
        attrs.insert(0, node.attr)
        node = node.value
    return (node.id, attrs) if isinstance(node, ast.Name) else None


def library_private_names(tree: ast.AST) -> set[str]:
    """The private names of third-party libraries (not the standard library) a module uses: imports from or of a
    private module or name (`from dagster._core.x import y`, `from feast.m import _n`, `dagster.core`), private
    attributes of names bound to them (`dg._core`, `RedisOnlineStore._parse_connection_string`), the KNOWN_PRIVATE
    names wherever they appear, and the PRIVATE_STRINGS (Dagster's internal tags and module paths) in strings.
    Each is named by its dotted path when the AST ties it to a library, else as written."""
    bound: dict[str, str] = {}  # local name -> the library path it stands for
    used = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _is_library(alias.name):  # `import a.b` binds `a`, `import a.b as m` binds `m` to `a.b`
                    local = alias.asname or alias.name.partition(".")[0]
                    bound[local] = alias.name if alias.asname else local
                    used |= {alias.name} if _private(alias.name) else set()
        elif isinstance(node, ast.ImportFrom) and not node.level and _is_library(node.module or ""):
            for alias in node.names:
                bound[alias.asname or alias.name] = f"{node.module}.{alias.name}"
                used |= {f"{node.module}.{alias.name}"} if _private(f"{node.module}.{alias.name}") else set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and (node.id in bound or node.id in KNOWN_PRIVATE):
            path = bound.get(node.id, node.id)
            used |= {path} if _private(path) else set()
        elif isinstance(node, ast.Attribute):
            chain = _attribute_path(node)
            if chain and chain[0] in bound:
                path = ".".join([bound[chain[0]], *chain[1]])
                if _private(path) and not _private(path.rpartition(".")[0]):  # name the first private step only
                    used.add(path)
            elif node.attr in KNOWN_PRIVATE:
                used.add(f".{node.attr}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            used |= {node.value for prefix in PRIVATE_STRINGS if node.value.startswith(prefix)}
    return used


def dtype_maps(tree: ast.AST) -> list[int]:
    """Lines of the dict literals that map spec dtype names to something (at least two of them as constant keys)
    or something to them (at least two as constant values): `{"int64": pa.int64(), "float32": ...}`,
    `{"Int64": "int64", ...}`. One such table per dtype fact keeps Pandera, Feast, Spark and the stores in step."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            keys = sum(isinstance(k, ast.Constant) and k.value in DTYPE_NAMES for k in node.keys)
            values = sum(isinstance(v, ast.Constant) and v.value in DTYPE_NAMES for v in node.values)
            if keys >= 2 or values >= 2:
                lines.append(node.lineno)
    return lines

"""`init`: scaffold a feature repository of one's own (standard library only: it needs no store)."""

from __future__ import annotations

import importlib.util
import keyword
from pathlib import Path

from feature_platform.cli import repo_template
from feature_platform.cli.arguments import add_command
from feature_platform.errors import InvalidArgumentError, shorten


def register(sub) -> None:
    init = add_command(
        sub, "init", help="scaffold a feature repository: a source, an entity, a view, its test and Dagster's entry "
        "point",
        description="Create a feature repository in DIR (new or empty): a Parquet source (sources.py), a string-keyed "
        "entity (entities.py), a 7-day feature view, a test that materializes it from a few rows, definitions.py "
        "and workspace.yaml for `dagster dev -w DIR/workspace.yaml`. Point FEATURE_PLATFORM_REPO at DIR to use it "
        "from the CLI and the Python API.",
        examples=["my_features", "teams/ml/shop_features"])
    init.add_argument("directory", metavar="DIR", help="the repository's directory; its name is the package name "
                      "(a Python identifier, e.g. my_features)")
    init.set_defaults(run=init_command, needs_platform=False)


def init_command(args) -> int:
    target = Path(args.directory).expanduser()
    package = checked_package_name(target)
    files = scaffold(target, package)
    print(f"created feature repository {package} in {target}/:")
    for path in files:
        print(f"  {path}")
    print(f"next: put Parquet files of events (user_id, event_type, amount, event_timestamp) under "
          f"{target / repo_template.DATA_DIR}/, then\n"
          f"  FEATURE_PLATFORM_REPO={target} feature-platform views\n"
          f"  pytest {target / 'tests'}\n"
          f"  dagster dev -w {target / 'workspace.yaml'}")
    return 0


def checked_package_name(target: Path) -> str:
    """The repository's package name (its directory's), refused when the directory has files already or the name
    cannot be imported as the repository."""
    name = target.name
    if not name.isidentifier() or keyword.iskeyword(name):
        raise InvalidArgumentError(f"init: the directory name {shorten(name)} is the repository's package name and "
                                   "must be a Python identifier (letters, digits and _, e.g. my_features)")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InvalidArgumentError(f"init: {shorten(str(target))} already exists and is not an empty directory; "
                                   "give a new or empty directory")
    found = importlib.util.find_spec(name)
    where = found and (found.origin or next(iter(found.submodule_search_locations or ()), None))
    if where and Path(where).resolve() != target.resolve():
        raise InvalidArgumentError(f"init: a module named {name!r} is already importable (from {where}); the "
                                   "repository would hide it or be hidden by it: pick another directory name")
    return name


def scaffold(target: Path, package: str) -> list[Path]:
    """Write the repository's files under `target`; returns their paths."""
    written = []
    for relative, text in repo_template.rendered(package).items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written

"""The Feast versions this package's formats were verified against, and the start-up check of the installed one.

The platform writes Feast's online stores itself (Redis hashes, SQLite rows) and formats Feast's JSON answer
without Feast's code on the hot path; Feast reads what it wrote. A Feast release may change any of those
formats, so outside the verified range the platform warns at start-up (`FeastVersionWarning`): re-run the
contract tests (feature_platform_tests/feast_format/, test_spark_online_sync.py) against the new release, then
widen `VERIFIED_FEAST`.
"""

from __future__ import annotations

import re
import warnings
from importlib import metadata

VERIFIED_FEAST = ("0.67.0", "0.68.0")  # from (inclusive) to (exclusive): the pinned feast==0.67.0, any patch of it


class FeastVersionWarning(UserWarning):
    """The installed Feast is outside the range the platform's Feast formats were verified against."""


def _release(version: str) -> tuple[int, ...]:
    """The numeric release of a version string (`0.67.1rc1` -> (0, 67, 1)), three parts."""
    parts = [int(p) for p in re.findall(r"\d+", re.match(r"\d+(?:\.\d+)*", version.strip()).group())]
    return tuple((parts + [0, 0, 0])[:3])


def installed_feast() -> str | None:
    try:
        return metadata.version("feast")
    except metadata.PackageNotFoundError:
        return None


def check_feast_version(installed: str | None = None) -> bool:
    """True when the installed Feast (or `installed`) is in `VERIFIED_FEAST`; else warns and returns False."""
    installed = installed if installed is not None else installed_feast()
    low, high = VERIFIED_FEAST
    try:
        ok = installed is not None and _release(low) <= _release(installed) < _release(high)
    except (AttributeError, ValueError):  # not a version number
        ok = False
    if not ok:
        warnings.warn(
            f"feast {installed or '(not installed)'} is outside the versions feature_platform's Feast storage formats "
            f"were verified against (>={low},<{high}): online values written by the platform may not read back "
            "through Feast. Run the contract tests in feature_platform_tests/feast_format/ against it.",
            FeastVersionWarning, stacklevel=2)
    return ok

"""The Feast version range the platform's Feast formats were verified against, checked at start-up."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest

from feature_platform.feast_format import version
from feature_platform.feast_format.version import FeastVersionWarning, check_feast_version


def test_the_installed_feast_is_in_the_verified_range_and_raises_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_feast_version() is True
        for inside in ("0.67.0", "0.67.5", "0.67.1rc1"):
            assert check_feast_version(inside) is True


@pytest.mark.parametrize("outside", ["0.66.9", "0.68.0", "1.0", "0.7.0", "unknown"])
def test_a_feast_outside_the_range_warns_with_a_named_warning(outside):
    with pytest.warns(FeastVersionWarning, match=rf"feast {outside} is outside .*>=0\.67\.0,<0\.68\.0"):
        assert check_feast_version(outside) is False


def test_feast_not_installed_warns(monkeypatch):
    def missing(name):
        raise version.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(version.metadata, "version", missing)
    with pytest.warns(FeastVersionWarning, match=r"feast \(not installed\)"):
        assert check_feast_version() is False


# The first import of the package checks the installed Feast (here reported as 0.99.0). Without the package's
# __init__, which loads Feast and Dagster (seconds) and so would import feast_format before the patch.
STARTUP = """
import importlib.util, sys, types, warnings
from importlib import metadata
package = types.ModuleType("feature_platform")
package.__path__ = list(importlib.util.find_spec("feature_platform").submodule_search_locations)
sys.modules["feature_platform"] = package
real = metadata.version
metadata.version = lambda name: "0.99.0" if name == "feast" else real(name)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import feature_platform.feast_format
print([(w.category.__name__, str(w.message)) for w in caught])
"""


def test_the_first_use_of_the_package_warns_when_feast_is_outside_the_range():
    result = subprocess.run([sys.executable, "-c", STARTUP], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "FeastVersionWarning" in result.stdout and "feast 0.99.0 is outside" in result.stdout

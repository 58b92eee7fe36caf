"""`python -m feature_platform.cli`: the same as the `feature-platform` command."""

from feature_platform.cli import entry_point

entry_point()

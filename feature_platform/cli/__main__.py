"""`python -m feature_platform.cli`: the same as the `feature-platform` command."""

import sys

from feature_platform.cli.app import main

sys.exit(main())

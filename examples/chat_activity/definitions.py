"""What Dagster loads for this repository (`dagster dev -w examples/chat_activity/workspace.yaml`): its sources,
feature views, checks, sensors and training sets. Merge them with other Dagster definitions of the same code
location with `dg.Definitions.merge(defs, other_defs)`."""

from pathlib import Path

import feature_platform

defs = feature_platform.build_definitions(repo=Path(__file__).parent)

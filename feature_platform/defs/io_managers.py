"""Parquet IO manager for datasets (labels, training sets): one file per asset under FEATURE_PLATFORM_HOME."""

from pathlib import Path

import dagster as dg
import pandas as pd

from feature_platform.config import Settings
from feature_platform.repo import load_repository
from feature_platform.training import training_set_path
from feature_platform.util.atomic import atomic_write
from feature_platform.util.parquet_files import read_frame, write_frame


def dataset_path(settings: Settings, asset_name: str) -> Path:
    """Training sets live at training_sets/<name>/v<version>.parquet; other datasets at datasets/<name>.parquet."""
    spec = load_repository(settings.repo_location).training_sets.get(asset_name)
    if spec is not None:
        return training_set_path(settings, spec)
    return settings.home / "datasets" / f"{asset_name}.parquet"


class DatasetIOManager(dg.ConfigurableIOManager):
    """Stores DataFrames as Parquet, written beside the final path and renamed into place."""

    home: str
    repo: str = ""

    def _path(self, key: dg.AssetKey) -> Path:
        return dataset_path(Settings.from_env({"FEATURE_PLATFORM_HOME": self.home, "FEATURE_PLATFORM_REPO": self.repo}),
                            key.path[-1])

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame) -> None:
        path = self._path(context.asset_key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, durable=False) as tmp:  # a re-materialization rebuilds a lost one
            write_frame(obj, tmp)
        context.add_output_metadata({"path": dg.MetadataValue.path(str(path))})

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        return read_frame(self._path(context.asset_key))

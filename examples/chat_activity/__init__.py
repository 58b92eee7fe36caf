"""chat_activity: the example feature repository, the platform's default when FEATURE_PLATFORM_REPO is unset.

One module per feature view (`user_activity.py`, `user_realtime.py`, ...), the raw source they read
(`sources.py`), the entity (`entities.py`), the churn model's feature service and training set (`churn.py`)
with its label function (`labels.py`), and who may read or push what (`access.py`). Every module-level
instance of a `feature_platform.spec` type is a definition; adding a view means adding one module here.
`definitions.py` is what Dagster loads (modules named `definitions`, `test_*` or `_*` are not scanned).
"""

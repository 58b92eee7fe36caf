"""The JSON document of Feast's `/get-online-features` (its `convert_response_to_dict`), built from plain
columns with Feast's own value, status and timestamp formatting, without the protobuf round trip."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from feast.feature_server_utils import _STATUS_NAMES, _float_to_native, _timestamp_to_str


class _Stamp(NamedTuple):  # what Feast's `_timestamp_to_str` reads of a protobuf Timestamp
    seconds: int
    nanos: int


def json_values(values: Iterable) -> list:
    """Values as Feast's document holds them (its float formatting; the rest as they are)."""
    return [_float_to_native(v) if isinstance(v, float) else v for v in values]


def status_names(statuses: Iterable[int]) -> list[str]:
    """`FieldStatus` values by the names Feast's document gives them."""
    return [_STATUS_NAMES[s] for s in statuses]


def timestamp_texts(stamps_ns: Iterable[int | None]) -> list[str]:
    """Feature timestamps (ns since the epoch; None for none) as Feast's document writes them."""
    return [_timestamp_to_str(_Stamp(*divmod(ns or 0, 1_000_000_000))) for ns in stamps_ns]

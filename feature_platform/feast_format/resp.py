"""The Redis writer's script calls as RESP bytes, framed with numpy a chunk of rows at a time.

`hiredis.pack_command` packs a command from Python bytes objects: one object per cell (700,000 for 100,000
rows of six features), each built, then copied. Here every column becomes a padded byte matrix with a
length per row: fixed-width numbers and protobuf varints are vectorized; strings and booleans go through a
table of their distinct values, encoded by `codec`. A chunk's matrices are laid side by side and a mask of
the valid bytes squeezes the padding out: the rows' RESP bulk strings, in row order, in one array. Equal
byte for byte to `hiredis.pack_command` of `codec`'s cells (tested).
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np
import pandas as pd

from feature_platform.dtypes import DTYPES
from feature_platform.feast_format import codec

MAX_CELL = 1024  # widest framed cell a chunk is built with; a wider value sends its chunk through hiredis


class Cells(NamedTuple):
    data: np.ndarray  # uint8 (rows, width): each row's bytes, left-aligned, then padding
    lengths: np.ndarray | None  # the valid bytes of each row (None: all `width`)


class TooWide(Exception):
    """A cell wider than MAX_CELL: the chunk is packed cell by cell instead."""


def bulk(args) -> bytes:
    """RESP bulk strings of `args` (bytes), as `hiredis.pack_command` frames them."""
    return b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def command_head(n_args: int, name: bytes) -> bytes:
    return b"*%d\r\n" % n_args + bulk([name])


def squeeze(parts: list[Cells]) -> tuple[np.ndarray, np.ndarray]:
    """The rows of `parts` concatenated part after part, row after row: the bytes (uint8) and the offset where
    each row starts (rows + 1 entries, the last one the total)."""
    n = len(parts[0].data)
    data = np.concatenate([p.data for p in parts], axis=1)
    mask = np.concatenate([np.ones(p.data.shape, dtype=bool) if p.lengths is None
                           else np.arange(p.data.shape[1]) < p.lengths[:, None] for p in parts], axis=1)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(mask.sum(axis=1), out=offsets[1:])
    return data[mask], offsets


def framed(payload: list[Cells], lengths: np.ndarray) -> list[Cells]:
    """`payload` (parts whose lengths add up to `lengths`) as RESP bulk strings: `$<length>\\r\\n...\\r\\n`."""
    n = len(lengths)
    heads, head_lengths = _heads(int(lengths.max()) if n else 0)
    return [Cells(heads[lengths], head_lengths[lengths]), *payload, _constant(b"\r\n", n)]


@lru_cache(maxsize=64)
def _heads(longest: int) -> tuple[np.ndarray, np.ndarray]:
    """`$<n>\\r\\n` for n in 0..longest, padded (a lookup table by length)."""
    return _table([b"$%d\r\n" % n for n in range(longest + 1)])


def _table(items: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """`items` as a padded uint8 matrix and their lengths."""
    lengths = np.fromiter((len(b) for b in items), dtype=np.int64, count=len(items))
    width = int(lengths.max()) if len(items) else 0
    if width > MAX_CELL:
        raise TooWide
    out = np.zeros((len(items), max(width, 1)), dtype=np.uint8)
    out[np.arange(out.shape[1]) < lengths[:, None]] = np.frombuffer(b"".join(items), dtype=np.uint8)
    return out, lengths


def varint(values: np.ndarray) -> Cells:
    """Protobuf varints of int64 values (a negative one as ten bytes of two's complement)."""
    u = values.astype(np.int64, copy=False).view(np.uint64)
    width = 1
    top = int(u.max()) if len(u) else 0
    while width < 10 and top >> (7 * width):
        width += 1
    out = np.empty((len(u), width), dtype=np.uint8)
    sizes = np.ones(len(u), dtype=np.int64)
    for k in range(width):
        shifted = u >> np.uint64(7 * k)
        out[:, k] = (shifted & np.uint64(0x7F)).astype(np.uint8)
        if k:
            sizes += shifted != 0
    out |= np.where(np.arange(width) < (sizes - 1)[:, None], np.uint8(0x80), np.uint8(0))
    return Cells(out, sizes)


def _tagged(tag: int, present: np.ndarray, body: Cells) -> tuple[list[Cells], np.ndarray]:
    """`tag` then `body` where `present`, nothing elsewhere; with the payload's lengths."""
    tags = np.broadcast_to(np.uint8(tag), (len(present), 1))
    body_lengths = np.where(present, body.lengths if body.lengths is not None else body.data.shape[1], 0)
    return [Cells(tags, present.astype(np.int64)), Cells(body.data, body_lengths)], present + body_lengths


def value_cells(values: pd.Series, dtype: str) -> list[Cells]:
    """`codec.encode_values`, framed as RESP bulk strings."""
    if dtype in ("float32", "float64"):
        width, code = (4, "<f4") if dtype == "float32" else (8, "<f8")
        arr = pd.to_numeric(values).to_numpy(dtype=code, na_value=np.nan)
        present = ~np.isnan(arr)  # NaN and missing are both Feast's empty Value
        payload, lengths = _tagged(DTYPES[dtype].proto_tag, present, Cells(arr.view(np.uint8).reshape(-1, width), None))
        return framed(payload, lengths)
    if dtype == "int64" and values.dtype.kind == "i":  # numpy or pandas' nullable integers: vectorized
        present = values.notna().to_numpy()
        body = varint(values.to_numpy(dtype=np.int64, na_value=0))
        payload, lengths = _tagged(DTYPES[dtype].proto_tag, present, body)
        return framed(payload, lengths)
    codes, table = codec.distinct(values, codec.scalar_encoder(dtype))
    return table_cells(codes, table)


def table_cells(codes: np.ndarray, table: list[bytes]) -> list[Cells]:
    """Cells given as codes into a table of their bytes, framed (one framed cell per distinct value)."""
    data, lengths = _table([b"$%d\r\n%s\r\n" % (len(b), b) for b in table])
    return [Cells(data[codes], lengths[codes])]


def timestamp_cells(stamps: pd.Series) -> list[Cells]:
    """`codec.encode_timestamps`, framed: seconds and nanos as protobuf fields, each omitted when zero."""
    if stamps.dtype.kind != "M":  # datetime64 columns, naive or not, already count from the epoch in UTC
        stamps = pd.to_datetime(stamps, utc=True, format="ISO8601")
    ns = stamps.array.as_unit("ns").asi8
    known = stamps.notna().to_numpy()
    seconds, nanos = np.divmod(ns, 1_000_000_000)  # floor, as Python's divmod
    first, first_lengths = _tagged(0x08, known & (seconds != 0), varint(seconds))
    second, second_lengths = _tagged(0x10, known & (nanos != 0), varint(nanos))
    return framed(first + second, first_lengths + second_lengths)


def key_cells(join_key: str, dtype: str, values: pd.Series, project: str) -> list[Cells]:
    """`codec.entity_keys`, framed."""
    if dtype == "int64":
        keys = codec.int64_key_matrix(join_key, values, project)
        return [_constant(b"$%d\r\n" % keys.shape[1], len(keys)), Cells(keys, None), _constant(b"\r\n", len(keys))]
    return table_cells(np.arange(len(values)), codec.entity_keys(join_key, dtype, values, project))


def _constant(raw: bytes, rows: int) -> Cells:
    return Cells(np.broadcast_to(np.frombuffer(raw, dtype=np.uint8), (rows, len(raw))), None)

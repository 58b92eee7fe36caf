"""The Redis online store's fast path: Feast's format, written newest-wins in pipelined Lua batches.

Stock Feast either reads every entity's timestamp in a round trip before writing (and skips ties,
so a re-run cannot replace its own partition) or writes blindly. Here one Lua script per batch of
rows compares each stored `_ts:<view>` with the incoming one inside Redis and writes the row when
the incoming timestamp is the same or newer: newest-wins with no read round trip, atomic per batch,
safe against concurrent writers. The calls are framed as RESP bytes with numpy a chunk of rows at a time
(`resp`) and streamed on one connection while Redis executes the previous ones (replies are read at the
end), so client and server work overlap. A value that cannot be encoded therefore fails the write after
the earlier chunks were written (rows reach the writer validated; a re-run rewrites them, ties rewrite). The
script is generated for the view's feature count (its HSET arguments spelled out), which saves Redis
building an argument table per row.

On a Redis Cluster a script may only touch keys of one hash slot, and Feast's keys carry no hash tag
(the slot is CRC16 of the whole entity key), so there the rows are grouped by slot: one script call per
slot and batch, sent through redis-py's cluster pipeline, which routes each call to its slot's master
and sends the masters their calls in parallel. Reads are the same pipelined HMGETs (one key each).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from itertools import chain

import pandas as pd
import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

from feature_platform.compat import redis_internals
from feature_platform.feast_format import codec as fmt
from feature_platform.feast_format import resp
from feature_platform.spec import FeatureViewSpec
from feature_platform.vocabulary import EVENT_TIMESTAMP

BATCH_ROWS = 1_000  # rows per script call: big enough to amortize the call, small enough to not block Redis
CHUNK_ROWS = 8 * BATCH_ROWS  # rows framed at a time: Redis runs the first batches while the next are framed
_FEW_KEYS = 16  # a read of up to this many entities builds its keys one at a time (numpy's set-up costs more)
CLUSTER_CHUNK_ROWS = 20_000  # rows per cluster pipeline: bounds the client's memory for the queued calls

# KEYS: entity hashes. ARGV: ts field, n features, the n feature fields, then per key the encoded
# timestamp followed by its n values. The stored and incoming Timestamp protos are decoded in Lua.
_TIMESTAMPS = """
local memo = {}
local function ts(raw)
  if not raw then return -1, 0 end
  local hit = memo[raw]
  if hit then return hit[1], hit[2] end
  local s, n, i = 0, 0, 1
  while i <= #raw do
    local tag = string.byte(raw, i); i = i + 1
    local v, mul = 0, 1
    while true do
      local b = string.byte(raw, i); i = i + 1
      v = v + (b % 128) * mul; mul = mul * 128
      if b < 128 then break end
    end
    if tag == 8 then s = v elseif tag == 16 then n = v end
  end
  memo[raw] = {s, n}
  return s, n
end
-- Whether the incoming timestamp `new` replaces the stored `cur`: none stored, the same (a re-run rewrites), or newer.
local function wins(cur, new)
  if (not cur) or cur == new then return true end
  local new_s, new_n = ts(new)
  local cur_s, cur_n = ts(cur)
  return new_s > cur_s or (new_s == cur_s and new_n >= cur_n)
end
"""
_NEWEST_WINS = _TIMESTAMPS + "local tsf = ARGV[1]\n"
# Per row: the stored timestamp, newest-wins, then one HSET with the arguments spelled out (no table per row).
_SPELLED = """
$FIELDS
local call = redis.call
local written = 0
local o = 2 + $NF
for k = 1, #KEYS do
  local key = KEYS[k]
  local new = ARGV[o + 1]
  if wins(call('HGET', key, tsf), new) then
    call('HSET', key, tsf, new$PAIRS)
    written = written + 1
  end
  o = o + $NF + 1
end
return written
"""
# The same with HSET's arguments in a table (Lua limits a call's arguments, so a view of many features); the
# low-latency path's script below reuses its loop, with its own keys and arguments first.
# KEYS from KO + 1: entity hashes. ARGV from AO + 1: ts field, n features, the n feature fields, then per key the
# encoded timestamp followed by its n values.
_ROWS = """
local tsf, nf = ARGV[AO + 1], tonumber(ARGV[AO + 2])
local args = {tsf, false}
for f = 1, nf do args[2 * f + 1] = ARGV[AO + 2 + f] end
local written = 0
for k = KO + 1, #KEYS do
  local o = AO + 2 + nf + (k - KO - 1) * (nf + 1)
  local new = ARGV[o + 1]
  if wins(redis.call('HGET', KEYS[k], tsf), new) then
    args[2] = new
    for f = 1, nf do args[2 * f + 2] = ARGV[o + 1 + f] end
    redis.call('HSET', KEYS[k], unpack(args))
    written = written + 1
  end
end
"""
_TABLE = "local KO, AO = 0, 0\n" + _ROWS + "return written\n"
# The low-latency path's write, one call: KEYS[1] the direct log (a stream), KEYS[2] the view's watermark, then the
# entity hashes; ARGV[1] the log entry's rows, ARGV[2] the watermark candidate (us), then `_ROWS`' arguments. The
# XADD comes first: if it fails, nothing is written online (a value served online is always logged).
_DIRECT = _TIMESTAMPS + """
local id = redis.call('XADD', KEYS[1], '*', 'rows', ARGV[1])
local KO, AO = 2, 2
""" + _ROWS + """
local c = redis.call('GET', KEYS[2])
if (not c) or tonumber(c) < tonumber(ARGV[2]) then redis.call('SET', KEYS[2], ARGV[2]) end
return {id, written}
"""
_DIRECT_SHA = hashlib.sha1(_DIRECT.encode()).hexdigest()
_MAX_SPELLED = 60  # features a spelled-out HSET takes (Lua allows about 250 registers per function)


def newest_wins_script(n_features: int) -> str:
    """The script for views of `n_features` features."""
    if n_features > _MAX_SPELLED:
        return _NEWEST_WINS + _TABLE
    fields = "\n".join(f"local f{i} = ARGV[{2 + i}]" for i in range(1, n_features + 1))
    pairs = "".join(f", f{i}, ARGV[o + {1 + i}]" for i in range(1, n_features + 1))
    return _NEWEST_WINS + _SPELLED.replace("$FIELDS", fields).replace("$PAIRS", pairs).replace("$NF", str(n_features))


class RedisFeatures:
    """Writes and reads one project's feature views in Feast's Redis format."""

    def __init__(self, client: redis.Redis, project: str, reads: redis.Redis | None = None):
        self.client = client
        self.reads = reads or client  # reads may have a client of their own, with a shorter time budget
        self.project = project
        self._shas: dict[int, bytes] = {}  # by feature count
        self._read_fields: dict[tuple, list[bytes]] = {}
        self.cluster = isinstance(client, RedisCluster)
        self._packed_reads = not isinstance(self.reads, RedisCluster)  # a cluster client has a pool per node

    def keys(self, spec: FeatureViewSpec, values: Sequence) -> list[bytes]:
        return fmt.entity_keys(spec.entity.join_key, spec.entity.dtype, values, self.project)

    def write(self, spec: FeatureViewSpec, rows: pd.DataFrame, view: str | None = None,
              progress: Callable[[int], None] | None = None) -> int:
        """Write `rows` (entity, features, event_timestamp) newest-wins; returns rows written."""
        if rows.empty:
            return 0
        view = view or spec.name
        argv = [fmt.timestamp_field(view), str(len(spec.fields)).encode(), *(fmt.field_key(view, f.name) for f in spec.fields)]
        try:
            return self._send(spec, rows, argv, progress)
        except redis.exceptions.NoScriptError:  # a server restarted or its script cache was flushed
            self._shas.clear()
            return self._send(spec, rows, argv, progress)  # idempotent: ties rewrite the same bytes

    def _send(self, spec: FeatureViewSpec, rows: pd.DataFrame, argv: list[bytes], progress) -> int:
        if self.cluster:
            keys = self.keys(spec, rows[spec.entity.join_key])
            cells = [fmt.encode_timestamps(rows[EVENT_TIMESTAMP])]
            cells += [fmt.encode_values(rows[f.name], f.dtype) for f in spec.fields]
            return self._send_cluster([b"EVALSHA", self._script(len(spec.fields)), None], keys, argv, cells, progress)
        with redis_internals.raw_connection(self.client) as connection:  # closed on an error: no unread reply leaks
            sha, sent = self._script(len(spec.fields)), 0
            for start in range(0, len(rows), CHUNK_ROWS):
                stream, calls = self._frame(spec, rows.iloc[start:start + CHUNK_ROWS], argv, sha)
                redis_internals.send_packed(connection, stream)
                sent += calls
            written = 0
            for _ in range(sent):  # Redis ran them while later chunks were being framed
                written += int(redis_internals.reply(connection))
                if progress:
                    progress(written)
        return written

    def _frame(self, spec: FeatureViewSpec, rows: pd.DataFrame, argv: list[bytes], sha: bytes) -> tuple[bytes, int]:
        """The script calls writing `rows`, as RESP bytes, and how many calls they are."""
        try:
            keys, key_at = resp.squeeze(resp.key_cells(spec.entity.join_key, spec.entity.dtype,
                                                       rows[spec.entity.join_key], self.project))
            cells, cell_at = resp.squeeze([*resp.timestamp_cells(rows[EVENT_TIMESTAMP]),
                                           *(c for f in spec.fields for c in resp.value_cells(rows[f.name], f.dtype))])
        except resp.TooWide:  # a long string: hiredis packs this chunk from the cells as bytes objects
            return self._pack(spec, rows, argv, sha)
        keys, cells, packed_argv, per_row = memoryview(keys), memoryview(cells), resp.bulk(argv), 1 + len(spec.fields)
        out = []
        for start in range(0, len(rows), BATCH_ROWS):
            stop = min(start + BATCH_ROWS, len(rows))
            n = stop - start
            out += [resp.command_head(3 + n + len(argv) + n * per_row, b"EVALSHA"), resp.bulk([sha, b"%d" % n]),
                    keys[key_at[start]:key_at[stop]], packed_argv, cells[cell_at[start]:cell_at[stop]]]
        return b"".join(out), len(range(0, len(rows), BATCH_ROWS))

    def _pack(self, spec: FeatureViewSpec, rows: pd.DataFrame, argv: list[bytes], sha: bytes) -> tuple[bytes, int]:
        """`_frame` through hiredis, from `codec`'s cells (the definition the framed bytes are tested against)."""
        keys = self.keys(spec, rows[spec.entity.join_key])
        cells = [fmt.encode_timestamps(rows[EVENT_TIMESTAMP])]
        cells += [fmt.encode_values(rows[f.name], f.dtype) for f in spec.fields]
        out = []
        for start in range(0, len(keys), BATCH_ROWS):
            stop = min(start + BATCH_ROWS, len(keys))
            args = chain([b"EVALSHA", sha, str(stop - start).encode()], keys[start:stop], argv,
                         chain.from_iterable(zip(*(c[start:stop] for c in cells))))
            out.append(redis_internals.pack(tuple(args)))
        return b"".join(out), len(out)

    def _send_cluster(self, header: list, keys: list[bytes], argv: list[bytes], cells: list[list[bytes]],
                      progress) -> int:
        """`_send` on a Redis Cluster: per chunk of rows, one script call per hash slot and batch (a script
        may touch one slot only), in row order within a slot, so a key repeated in `rows` ends newest-wins."""
        written = 0
        for chunk in range(0, len(keys), CLUSTER_CHUNK_ROWS):
            by_slot: dict[int, list[int]] = {}
            for i in range(chunk, min(chunk + CLUSTER_CHUNK_ROWS, len(keys))):
                by_slot.setdefault(key_slot(keys[i]), []).append(i)
            with self.client.pipeline() as pipe:
                for rows in by_slot.values():
                    # The node is named here because redis-py 7.4 would otherwise ask a server for the keys
                    # of every EVALSHA (COMMAND GETKEYS): a round trip per call. MOVED is still followed.
                    node = self.client.get_node_from_key(keys[rows[0]])
                    for start in range(0, len(rows), BATCH_ROWS):
                        batch = rows[start:start + BATCH_ROWS]
                        pipe.execute_command("EVALSHA", header[1], len(batch), *(keys[i] for i in batch), *argv,
                                             *chain.from_iterable([c[i] for c in cells] for i in batch),
                                             target_nodes=node)
                written += sum(int(n) for n in pipe.execute())
            if progress:
                progress(written)
        return written

    def read(self, spec: FeatureViewSpec, keys: Sequence, features: Sequence[str], view: str | None = None
             ) -> tuple[list[int | None], list[list]]:
        """For each entity value: its feature timestamp (ns, None if absent) and the requested values."""
        return self.read_many([(spec, keys, features, view)])[0]

    def read_many(self, requests: Sequence[tuple[FeatureViewSpec, Sequence, Sequence[str], str | None]]
                  ) -> list[tuple[list[int | None], list[list]]]:
        """`read` for several views in one round trip (one pipelined HMGET per entity and view)."""
        return [(stamps, [list(row) for row in zip(*columns)] if columns else [[] for _ in stamps])
                for stamps, columns in self.read_many_columns(requests)]

    def read_many_columns(self, requests: Sequence[tuple[FeatureViewSpec, Sequence, Sequence[str], str | None]]
                          ) -> list[tuple[list[int | None], list[list]]]:
        """`read_many` with the values by feature: each request's timestamps and one list per feature."""
        plans, commands = [], []
        for spec, keys, features, view in requests:
            fields = self._fields(view or spec.name, features)[0]
            if len(keys) <= _FEW_KEYS:  # a request's few entities: one key at a time beats numpy's set-up
                join_key, dtype = spec.entity.join_key, spec.entity.dtype
                commands += [(fmt.entity_key(join_key, dtype, k, self.project), fields) for k in keys]
            else:
                commands += [(key, fields) for key in self.keys(spec, keys)]
            plans.append(len(keys))
        if len(commands) == 1:  # one entity of one view: a plain HMGET skips the pipeline's bookkeeping
            replies = [self.reads.hmget(*commands[0])]
        else:
            with self.reads.pipeline(transaction=False) as pipe:
                for key, fields in commands:
                    pipe.hmget(key, fields)
                replies = pipe.execute()
        out, start = [], 0
        decode = fmt.decode_value
        for (_, _, features, _), n in zip(requests, plans):
            chunk = replies[start : start + n]
            start += n
            if n == 1:  # one entity: one pass over its reply
                out.append(([fmt.decode_timestamp(chunk[0][0])], [[decode(v)] for v in chunk[0][1:]]))
            else:
                out.append(([fmt.decode_timestamp(r[0]) for r in chunk],
                            [[decode(r[i]) for r in chunk] for i in range(1, len(features) + 1)]))
        return out

    def read_one(self, spec: FeatureViewSpec, key, features: Sequence[str]) -> tuple[list[int | None], list[list]]:
        """`read_many_columns` of one entity of one view (a serving request's usual read): one HMGET, its fields
        packed once per feature list and sent as they are on the connection the thread keeps (`_hmget`)."""
        key = fmt.entity_key(spec.entity.join_key, spec.entity.dtype, key, self.project)
        reply = self._hmget(key, spec.name, features)
        decode = fmt.decode_value
        return [fmt.decode_timestamp(reply[0])], [[decode(v)] for v in reply[1:]]

    def _hmget(self, key: bytes, view: str, features: Sequence[str]) -> list:
        """HMGET of the read's fields, packed by hand, on the connection the thread keeps of the reads' pool
        (`redis_internals.call_packed`). A connection lost mid-command (a Redis restart) is retried by the client's
        own call, within the read budget; a timeout is raised as it is: the read's one wait may have taken the
        whole budget (`stores.online.redis_client`)."""
        fields, packed = self._fields(view, features)
        if not self._packed_reads:
            return self.reads.hmget(key, fields)
        try:
            return redis_internals.call_packed(self.reads, b"*%d\r\n$5\r\nHMGET\r\n$%d\r\n%b\r\n%b" % (
                len(fields) + 2, len(key), key, packed))
        except redis.exceptions.ConnectionError:
            return self.reads.hmget(key, fields)

    def _fields(self, view: str, features: Sequence[str]) -> tuple[list[bytes], bytes]:
        """The hash fields of a read (its timestamp, then the features) and them packed as RESP arguments,
        cached: serving reads the same lists."""
        key = (view, tuple(features))
        fields = self._read_fields.get(key)
        if fields is None:
            if len(self._read_fields) >= 4096:
                self._read_fields.clear()
            names = [fmt.timestamp_field(view), *(fmt.field_key(view, f) for f in features)]
            fields = self._read_fields[key] = (names, b"".join(b"$%d\r\n%b\r\n" % (len(f), f) for f in names))
        return fields

    def _script(self, n_features: int) -> bytes:
        sha = self._shas.get(n_features)
        if sha is None:
            sha = self.client.script_load(newest_wins_script(n_features))
            sha = self._shas[n_features] = sha.encode() if isinstance(sha, str) else sha
        return sha

    def write_logged(self, spec: FeatureViewSpec, keys: list, stamps_ns: list[int], values: dict[str, list],
                     log_stream: str, log_rows: str, watermark_key: str, watermark_us: int) -> tuple[str, int]:
        """Append `log_rows` to the stream `log_stream`, write rows given as lists (entity values, event times in
        ns, per feature non-null Python values; at most BATCH_ROWS) newest-wins and raise the watermark, in ONE
        script call (one round trip; the log first). Returns (log entry id, rows written). Not on a cluster: the
        keys are in different slots."""
        view = spec.name
        cells = [[fmt.encode_timestamp_ns(t) for t in stamps_ns], *(fmt.encode_list(values[f.name], f.dtype)
                                                                      for f in spec.fields)]
        args = (2 + len(keys), log_stream, watermark_key, *self.keys(spec, keys), log_rows, watermark_us,
                fmt.timestamp_field(view), str(len(spec.fields)).encode(), *(fmt.field_key(view, f.name) for f in spec.fields),
                *chain.from_iterable(zip(*cells)))
        try:
            entry, written = self.client.execute_command("EVALSHA", _DIRECT_SHA, *args)
        except redis.exceptions.NoScriptError:  # first use, a restart or SCRIPT FLUSH: nothing ran, send it whole
            entry, written = self.client.execute_command("EVAL", _DIRECT, *args)
        return entry.decode(), int(written)

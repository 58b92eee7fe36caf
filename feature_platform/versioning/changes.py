"""What changed between two versions of a feature view, and whether consumers would notice.

Pure code over *descriptions*: plain dicts built from a spec (`derive.description.describe`) or read back from the Feast
registry, so the same comparison serves "code vs registry" and "version 2 vs version 3".

Classification (the seeds' rule: add new fields as new versions, removing or renaming needs a migration):

| change | class |
|---|---|
| field added; constraint looser (bound widened or dropped, values allowed, nullable); TTL longer; description, owner, tags, SLA, deprecation | additive: can be applied to the same version |
| field removed or renamed; dtype changed; constraint tighter; TTL shorter; entity changed; source changed; aggregation, window or closing value changed; version number changed in place | breaking: needs a new version |

Renames are detected from an explicit `Field(..., renamed_from="old")` hint. Without a hint, a removed
and an added field with the same dtype and the same aggregation (or, for pushed views, the same
description) are reported as a *possible* rename: still breaking, and the hint makes it certain.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

ADDITIVE, BREAKING = "additive", "breaking"


@dataclass(frozen=True)
class Change:
    kind: str  # e.g. field_added, dtype_changed, ttl_shorter
    subject: str  # the field, or the view attribute, it is about
    detail: str  # human-readable old -> new
    breaking: bool

    @property
    def classification(self) -> str:
        return BREAKING if self.breaking else ADDITIVE

    def as_dict(self) -> dict:
        return {**asdict(self), "classification": self.classification}


def diff(old: dict[str, Any], new: dict[str, Any], *, between_versions: bool = False) -> list[Change]:
    """The changes from description `old` to `new`. Keys missing on one side (a registry entry written
    without the platform's description) are not compared rather than guessed. `between_versions`: two
    views side by side (version N and N+1), whose version number and offline location differ by design."""
    if between_versions:
        old = {k: v for k, v in old.items() if k not in ("version", "location")}
    changes: list[Change] = []
    changes += _view_changes(old, new)
    changes += _field_changes(old.get("fields") or [], new.get("fields") or [])
    return changes


def _known(old: dict, new: dict, key: str) -> bool:
    """Compared only when both sides record it."""
    return key in old and key in new


def _view_changes(old: dict, new: dict) -> list[Change]:
    out = []
    if _known(old, new, "version") and old["version"] != new["version"]:
        out.append(Change("version_changed", "version", f"version: {old['version']} -> {new['version']}", True))
    if _known(old, new, "entity") and old["entity"] != new["entity"]:
        o, n = old["entity"], new["entity"]
        out.append(Change("entity_changed", "entity", f"entity: {o.get('name')}({o.get('join_key')} {o.get('dtype')}) -> "
                                                      f"{n.get('name')}({n.get('join_key')} {n.get('dtype')})", True))
    if _known(old, new, "ttl_seconds") and old["ttl_seconds"] != new["ttl_seconds"]:
        longer = new["ttl_seconds"] > old["ttl_seconds"]
        out.append(Change("ttl_longer" if longer else "ttl_shorter", "ttl",
                          f"ttl: {human_duration(old['ttl_seconds'])} -> {human_duration(new['ttl_seconds'])}", not longer))
    for key, label in (("source", "source"), ("timestamp_column", "source timestamp column")):
        if _known(old, new, key) and old[key] != new[key]:
            out.append(Change("source_changed", label, f"{label}: {old[key]} -> {new[key]}", True))
    if _known(old, new, "window_seconds") and old["window_seconds"] != new["window_seconds"]:
        out.append(Change("aggregation_changed", "window",
                          f"window: {human_duration(old['window_seconds'])} -> {human_duration(new['window_seconds'])}", True))
    for key, label in (("description", "description"), ("owner", "owner"), ("tags", "tags"),
                       ("location", "offline table location")):
        if _known(old, new, key) and old[key] != new[key]:
            out.append(Change("metadata_changed", label, f"{label}: {_text_change(old[key], new[key])}", False))
    if _known(old, new, "freshness_sla_seconds") and old["freshness_sla_seconds"] != new["freshness_sla_seconds"]:
        out.append(Change("metadata_changed", "freshness_sla",
                          f"freshness_sla: {human_duration(old['freshness_sla_seconds'])} -> {human_duration(new['freshness_sla_seconds'])}",
                          False))
    if old.get("deprecated") != new.get("deprecated") and "deprecated" in new:
        if new.get("deprecated"):
            out.append(Change("deprecated", "deprecated", f"deprecated: {new['deprecated']!r}", False))
        else:
            out.append(Change("undeprecated", "deprecated", f"no longer deprecated (was: {old.get('deprecated')})", False))
    return out


def _field_changes(old_fields: list[dict], new_fields: list[dict]) -> list[Change]:
    old = {f["name"]: f for f in old_fields}
    new = {f["name"]: f for f in new_fields}
    removed = [n for n in old if n not in new]
    added = [n for n in new if n not in old]
    out: list[Change] = []

    # Renames: explicit hints first, then a conservative heuristic.
    for name in list(added):
        hint = new[name].get("renamed_from")
        if hint and hint in removed:
            added.remove(name)
            removed.remove(hint)
            out.append(Change("field_renamed", name, f"{hint} -> {name}", True))
            out += _same_field_changes(name, old[hint], new[name])
    for name in list(added):
        candidates = [r for r in removed if _looks_like(old[r], new[name])]
        if len(candidates) == 1:
            (was,) = candidates
            added.remove(name)
            removed.remove(was)
            out.append(Change("possible_rename", name,
                              f"{was} -> {name}? (same dtype and {'aggregation' if new[name].get('aggregation') else 'description'};"
                              f" declare Field({name!r}, ..., renamed_from={was!r}) to confirm)", True))
    for name in removed:
        out.append(Change("field_removed", name, f"{name} {old[name].get('dtype')}", True))
    for name in added:
        f = new[name]
        agg = f" = {f['aggregation']}" if f.get("aggregation") else ""
        out.append(Change("field_added", name, f"{name} {f.get('dtype')}{agg}", False))
    for name in new:
        if name in old:
            out += _same_field_changes(name, old[name], new[name])
    return out


def _looks_like(old: dict, new: dict) -> bool:
    if old.get("dtype") != new.get("dtype"):
        return False
    if old.get("aggregation") or new.get("aggregation"):
        return old.get("aggregation") == new.get("aggregation")
    return bool(old.get("description")) and old.get("description") == new.get("description")


def _same_field_changes(name: str, old: dict, new: dict) -> list[Change]:
    out = []
    if old.get("dtype") != new.get("dtype"):
        out.append(Change("dtype_changed", name, f"{name}: {old.get('dtype')} -> {new.get('dtype')}", True))
    for key, label in (("aggregation", "aggregation"), ("empty", "closing-row value")):
        if key in old and key in new and old[key] != new[key]:
            out.append(Change("aggregation_changed", name, f"{name}: {label} {old[key]} -> {new[key]}", True))
    for key in ("ge", "le", "isin", "nullable"):
        if key in old and key in new and old[key] != new[key]:
            looser = _looser(key, old[key], new[key])
            out.append(Change("constraint_loosened" if looser else "constraint_tightened", name,
                              f"{name}: {_constraint(key, old[key])} -> {_constraint(key, new[key])}", not looser))
    if "description" in old and old.get("description") != new.get("description"):
        out.append(Change("metadata_changed", name, f"{name}: description "
                                                    f"{_text_change(old.get('description'), new.get('description'))}",
                          False))
    return out


def _looser(key: str, old, new) -> bool:
    if key == "nullable":
        return bool(new) and not old
    if new is None:
        return True  # constraint dropped
    if old is None:
        return False  # constraint added
    if key == "ge":
        return new < old
    if key == "le":
        return new > old
    return set(old) <= set(new)  # isin: every value allowed before still is


def _constraint(key: str, value) -> str:
    if key == "nullable":
        return "nullable" if value else "not null"
    if value is None:
        return f"no {key}"
    if key == "isin":
        return "in {" + ", ".join(map(str, value)) + "}"
    return f"{'>=' if key == 'ge' else '<='} {value:g}"


def human_duration(seconds: float) -> str:
    days, rest = divmod(int(seconds), 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{v}{u}" for v, u in ((days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")) if v]
    return "".join(parts) or "0s"


def _text_change(old, new, width: int = 60) -> str:
    """`old -> new`, long texts cut to where they start to differ."""
    if not (isinstance(old, str) and isinstance(new, str)):
        return f"{old!r} -> {new!r}"
    common = 0
    while common < min(len(old), len(new)) and old[common] == new[common]:
        common += 1
    start = max(0, common - 12) if max(len(old), len(new)) > width else 0

    def cut(text: str) -> str:
        part = ("..." if start else "") + text[start:]
        return repr(part if len(part) <= width else part[: width - 3] + "...")

    return f"{cut(old)} -> {cut(new)}"

"""The plan: per feature view, code against registry, classified, with a migration plan where needed.

Pure code over descriptions (see `changes.describe`); the workflow module feeds it the registry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from feature_platform.spec import FeatureServiceSpec, TrainingSetSpec, versioned_name
from feature_platform.versioning.changes import Change, diff

CREATE, UPDATE, UNCHANGED, REFUSED, NOT_IN_CODE = "create", "update", "unchanged", "refused", "not in code"
_SIGN = {"field_added": "+", "field_removed": "-"}


@dataclass
class Migration:
    """How to move from `old` to `new`, a version of its own beside it."""

    old: str
    new: str
    new_version: int
    family: str
    backfill: list[date] | None  # partitions `old` has (None: not looked up; []: none, e.g. a pushed view)
    feature_services: list[str]
    training_sets: list[str]
    renames: dict[str, str] = field(default_factory=dict)
    declared: bool = False  # True when `new` is already declared in code (a new version being created)

    def steps(self) -> list[str]:
        out = []
        if not self.declared:
            out.append(f"declare the change as version {self.new_version}: a new spec "
                       f"FeatureViewSpec(name={self.new!r}, family={self.family!r}, version={self.new_version}, ...) "
                       f"beside {self.old!r}, and put {self.old!r} back as registered")
            out.append("feature-platform apply")
        if self.backfill:
            first, last = self.backfill[0], self.backfill[-1]
            out.append(f"backfill {self.new} for the {len(self.backfill)} partition(s) {self.old} has ({first} .. {last}): "
                       f"feature-platform materialize --view {self.new} --start {first} --end {last}")
        elif self.backfill is not None:
            out.append(f"nothing to backfill: {self.old} has no materialized partitions")
        consumers = _consumer_text(self.feature_services, self.training_sets)
        renamed = "".join(f"; {self.old}:{a} becomes {self.new}:{b}" for a, b in self.renames.items())
        out.append(f"move the consumers of {self.old} to {self.new}: {consumers}{renamed}" if consumers
                   else f"no feature service or training set reads {self.old}{renamed}")
        out.append(f"deprecate {self.old} (deprecated=\"use {self.new}\") and apply: its readers get warnings")
        out.append(f"once nothing refers to {self.old}: delete its spec, then feature-platform remove {self.old}")
        return out

    def as_dict(self) -> dict:
        return {"old": self.old, "new": self.new, "new_version": self.new_version,
                "backfill": [d.isoformat() for d in self.backfill or []], "feature_services": self.feature_services,
                "training_sets": self.training_sets, "renames": self.renames, "steps": self.steps()}


@dataclass
class ViewPlan:
    name: str
    family: str
    version: int
    action: str  # create / update / unchanged / refused / not in code
    changes: list[Change] = field(default_factory=list)
    previous: str | None = None  # a new version: the registered (or declared) version it sits beside
    migration: Migration | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def breaking(self) -> bool:
        return any(c.breaking for c in self.changes)

    @property
    def classification(self) -> str:
        if self.action == CREATE:
            return "new version" if self.previous else "new view"
        if not self.changes:
            return "unchanged"
        return "breaking" if self.breaking else "additive"

    def as_dict(self) -> dict:
        return {"view": self.name, "family": self.family, "version": self.version, "action": self.action,
                "classification": self.classification, "previous": self.previous,
                "changes": [c.as_dict() for c in self.changes], "notes": self.notes,
                "migration": self.migration.as_dict() if self.migration else None}


@dataclass
class ServicePlan:
    name: str
    action: str
    detail: str = ""


@dataclass
class Plan:
    views: list[ViewPlan]
    services: list[ServicePlan] = field(default_factory=list)

    @property
    def refused(self) -> list[ViewPlan]:
        return [v for v in self.views if v.action == REFUSED]

    @property
    def to_apply(self) -> list[ViewPlan]:
        return [v for v in self.views if v.action in (CREATE, UPDATE)]

    @property
    def has_changes(self) -> bool:
        return bool(self.to_apply) or any(s.action in (CREATE, UPDATE) for s in self.services)

    def view(self, name: str) -> ViewPlan:
        return next(v for v in self.views if v.name == name)

    def summary(self) -> str:
        count = {a: sum(v.action == a for v in self.views) for a in (CREATE, UPDATE, UNCHANGED, REFUSED, NOT_IN_CODE)}
        text = (f"{count[CREATE]} to create, {count[UPDATE]} to update, {count[UNCHANGED]} unchanged, "
                f"{count[REFUSED]} refused (breaking in place)")
        return text + (f", {count[NOT_IN_CODE]} registered but not in code" if count[NOT_IN_CODE] else "")

    def render(self) -> str:
        lines: list[str] = []
        for v in self.views:
            head = f"feature view {v.name} (v{v.version}): {v.action}"
            if v.action == CREATE and v.previous:
                head += f" - new version {v.version} of {v.family}, beside {v.previous}"
            elif v.action == REFUSED:
                head += " - breaking change in place; a breaking change needs a new version"
            elif v.changes:
                head += f" ({v.classification})"
            lines.append(head)
            if v.changes:
                if v.action == CREATE:
                    lines.append(f"    changes from {v.previous}:")
                for c in v.changes:
                    lines.append(f"    {_SIGN.get(c.kind, '~')} {c.detail}  [{c.kind.replace('_', ' ')}: {c.classification}]")
            for note in v.notes:
                lines.append(f"    note: {note}")
            if v.migration:
                lines.append("    migration plan:")
                lines += [f"      {i}. {step}" for i, step in enumerate(v.migration.steps(), 1)]
        for s in self.services:
            lines.append(f"feature service {s.name}: {s.action}" + (f" ({s.detail})" if s.detail else ""))
        lines.append("")
        lines.append("plan: " + self.summary())
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {"views": [v.as_dict() for v in self.views],
                "services": [{"name": s.name, "action": s.action, "detail": s.detail} for s in self.services],
                "summary": self.summary()}


def consumers(view: str, services: Mapping[str, Sequence[str]],
              training_sets: Mapping[str, TrainingSetSpec]) -> tuple[list[str], list[str]]:
    """Feature services (name -> `view:feature` refs) reading `view`, and the training sets built on them."""
    using = sorted(name for name, refs in services.items() if any(r.partition(":")[0] == view for r in refs))
    sets = sorted(name for name, ts in training_sets.items() if ts.feature_service in using)
    return using, sets


def make_plan(
    code: Mapping[str, dict[str, Any]],
    registered: Mapping[str, dict[str, Any]],
    services: Mapping[str, FeatureServiceSpec],
    training_sets: Mapping[str, TrainingSetSpec],
    registered_services: Mapping[str, Sequence[str]] | None = None,
    partitions_of: Callable[[str], list[date] | None] | None = None,
) -> Plan:
    """Compare code descriptions with registered ones (both by view name)."""
    registered_services = dict(registered_services or {})
    service_refs = {**registered_services, **{n: list(s.features) for n, s in services.items()}}
    partitions_of = partitions_of or (lambda name: None)
    everything = {**registered, **code}
    views: list[ViewPlan] = []
    for name in sorted(set(code) | set(registered)):
        if name not in code:
            old = registered[name]
            using, sets = consumers(name, service_refs, training_sets)
            note = (f"still registered and served; `feature-platform remove {name}` deletes it from the registry "
                    "and the online store" + (f" once {_consumer_text(using, sets)} no longer read it" if using else ""))
            views.append(ViewPlan(name, old.get("family", name), old.get("version", 0), NOT_IN_CODE, notes=[note]))
            continue
        new = code[name]
        family, version = new["family"], new["version"]
        if name not in registered:
            previous = _previous_version(family, version, name, registered) or _previous_version(
                family, version, name, code)
            plan = ViewPlan(name, family, version, CREATE, previous=previous)
            if previous:
                plan.changes = diff(everything[previous], new, between_versions=True)
                using, sets = consumers(previous, service_refs, training_sets)
                plan.migration = Migration(old=previous, new=name, new_version=version, family=family,
                                           backfill=_backfill(partitions_of, previous, everything[previous]),
                                           feature_services=using, training_sets=sets,
                                           renames=_renames(plan.changes), declared=True)
            views.append(plan)
            continue
        changes = diff(registered[name], new)
        if not changes:
            views.append(ViewPlan(name, family, version, UNCHANGED))
            continue
        if any(c.breaking for c in changes):
            next_version = 1 + max(d.get("version", 0) for d in everything.values() if d.get("family") == family)
            using, sets = consumers(name, service_refs, training_sets)
            migration = Migration(old=name, new=versioned_name(family, next_version), new_version=next_version,
                                  family=family, backfill=_backfill(partitions_of, name, registered[name]),
                                  feature_services=using, training_sets=sets, renames=_renames(changes))
            views.append(ViewPlan(name, family, version, REFUSED, changes, migration=migration))
            continue
        plan = ViewPlan(name, family, version, UPDATE, changes)
        added = [c.subject for c in changes if c.kind == "field_added"]
        days = _backfill(partitions_of, name, registered[name]) if added else None
        if days:
            plan.notes.append(
                f"the {len(days)} partition(s) already materialized ({days[0]} .. {days[-1]}) have no value for "
                f"{', '.join(added)} until re-materialized: feature-platform materialize --view {name} "
                f"--start {days[0]} --end {days[-1]}")
        views.append(plan)
    return Plan(views, _service_plans(services, registered_services))


def _previous_version(family: str, version: int, name: str, descriptions: Mapping[str, dict]) -> str | None:
    older = [(d.get("version", 0), n) for n, d in descriptions.items()
             if n != name and d.get("family") == family and d.get("version", 0) < version]
    return max(older)[1] if older else None


def _backfill(partitions_of, name: str, description: dict) -> list[date] | None:
    if str(description.get("source", "")).startswith("push:"):
        return []  # a pushed view has no partitions to recompute; the new version gets new pushes
    return partitions_of(name)


def _renames(changes: list[Change]) -> dict[str, str]:
    out = {}
    for c in changes:
        if c.kind in ("field_renamed", "possible_rename"):
            old, _, new = c.detail.partition(" -> ")
            out[old] = new.split("?")[0]
    return out


def _service_plans(services: Mapping[str, FeatureServiceSpec],
                   registered: Mapping[str, Sequence[str]]) -> list[ServicePlan]:
    out = []
    for name in sorted(set(services) | set(registered)):
        if name not in services:
            out.append(ServicePlan(name, NOT_IN_CODE, "kept in the registry"))
        elif name not in registered:
            out.append(ServicePlan(name, CREATE))
        elif sorted(services[name].features) != sorted(registered[name]):
            out.append(ServicePlan(name, UPDATE, _service_change(registered[name], services[name].features)))
        else:
            out.append(ServicePlan(name, UNCHANGED))
    return out


def _service_change(old: Sequence[str], new: Sequence[str]) -> str:
    """`- a:x; + b:y`, or, when only the views changed (a consumer moving to a new version), `reads b instead of a`."""
    def features(refs):
        return sorted(r.partition(":")[2] for r in refs)

    def views(refs):
        return ", ".join(dict.fromkeys(r.partition(":")[0] for r in refs))

    if features(old) == features(new):
        return f"reads {views(new)} instead of {views(old)}: {len(new)} feature(s)"
    added, removed = sorted(set(new) - set(old)), sorted(set(old) - set(new))
    return "; ".join([*(f"+ {r}" for r in added), *(f"- {r}" for r in removed)])


def _consumer_text(services: list[str], sets: list[str]) -> str:
    parts = []
    if services:
        parts.append("feature services " + ", ".join(services))
    if sets:
        parts.append("training sets " + ", ".join(sets))
    return "; ".join(parts)

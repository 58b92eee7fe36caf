"""plan / apply / remove / history against a deployment's Feast registry.

`apply` and `remove` hold the deployment-wide registry lock (`stores.registry_history`) from reading the
registry to recording the history, and read the registry past any cache, so concurrent applies are
serialized: each plans against what the previous one wrote, and a change that would silently undo
another's (e.g. drop a field it just added) is refused as breaking instead of lost.
"""

from __future__ import annotations

import getpass
import socket
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import pandas as pd

from feature_platform.backends.feast_yaml import write_feature_store_yaml
from feature_platform.derive.description import describe, request_view_description
from feature_platform.derive.feast_objects import feast_feature_view, feast_objects
from feature_platform.errors import BreakingChangeError, UnknownFeatureViewError, ViewInUseError, shorten
from feature_platform.spec import FeatureViewSpec
from feature_platform.stores.registry_history import HistoryEntry
from feature_platform.stores.unavailable import store_errors
from feature_platform.versioning.changes import human_duration
from feature_platform.versioning.plan import CREATE, UPDATE, Plan, consumers, make_plan
from feature_platform.versioning.registry import (
    registered_request_views,
    registered_services,
    registered_views,
    source_location,
)

if TYPE_CHECKING:
    from feature_platform.runtime import Runtime


def current_user() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name (e.g. a container without passwd entry)
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _declared(specs, services, training_sets):
    from feature_platform.specs import all_feature_services, all_specs, all_training_sets, check_versions

    specs = dict(all_specs() if specs is None else {s.name: s for s in _values(specs)})
    services = dict(all_feature_services() if services is None else {s.name: s for s in _values(services)})
    sets = dict(all_training_sets() if training_sets is None else {s.name: s for s in _values(training_sets)})
    check_versions(specs.values())
    return specs, services, sets


def _values(objects):
    return objects.values() if isinstance(objects, Mapping) else objects


def code_descriptions(specs: Mapping[str, FeatureViewSpec], settings) -> dict[str, dict]:
    """What `apply` would write to the registry, described like the registry's entries."""
    return {name: {**describe(spec), "location": source_location(feast_feature_view(spec, settings))}
            for name, spec in specs.items()}


def plan(runtime: Runtime, specs=None, services=None, training_sets=None, *, migrations: bool = True) -> Plan:
    """Compare the specs (default: those in code) with the registry. Read-only."""
    specs, services, sets = _declared(specs, services, training_sets)
    return _plan(runtime, specs, services, sets, migrations)


def _plan(runtime: Runtime, specs, services, sets, migrations: bool) -> Plan:
    with store_errors(runtime.settings, "reading the Feast registry"):
        store = runtime.feast
        registered = registered_views(store)
        reg_services = registered_services(store)

    def partitions_of(name: str):
        spec = specs.get(name)
        return runtime.offline.partitions(spec) if spec is not None and spec.aggregation is not None else None

    return make_plan(code_descriptions(specs, runtime.settings), registered, services, sets, reg_services,
                     partitions_of if migrations else None)


def apply(runtime: Runtime, specs=None, services=None, training_sets=None, *, user: str | None = None,
          via: str = "apply", on_planned: Callable[[Plan], None] | None = None) -> Plan:
    """Apply the specs (default: those in code) to the registry, as `plan` shows them.

    Under the registry lock: re-read the registry, plan, refuse (`BreakingChangeError`, nothing applied)
    when any registered view would change in a breaking way in place, else register the Feast objects,
    adapt offline tables to additive changes, and record one history entry per created or changed view
    and feature service. Then write the deployment's `feature_store.yaml` for stock Feast (backends/feast_yaml.py).
    Returns the plan that was applied.
    """
    from_code = specs is None and services is None
    specs, services, sets = _declared(specs, services, training_sets)
    _check_service_references(specs, services)
    user = user or current_user()
    log = runtime.backends.registry_log()
    with log.lock(), store_errors(runtime.settings, "applying the Feast registry"):
        store = runtime.feast
        store.refresh_registry()  # plan against what is there now, not a cached copy
        the_plan = _plan(runtime, specs, services, sets, migrations=via != "auto-apply")
        if on_planned is not None:
            on_planned(the_plan)
        if the_plan.refused:
            raise BreakingChangeError(refusal_message(the_plan), the_plan)
        request_views, changed, stale = _request_views(store, specs)
        if the_plan.has_changes or changed:
            # Deleting needs partial=False (Feast deletes only then); nothing else is deleted with it.
            with warnings.catch_warnings():  # "On demand feature view is an experimental feature": known
                warnings.filterwarnings("ignore", message="On demand feature view", category=RuntimeWarning)
                store.apply(feast_objects(specs.values(), runtime.settings, services.values(), request_views),
                            objects_to_delete=stale, partial=not stale)
            for view in the_plan.to_apply:
                if view.action == UPDATE:
                    runtime.offline.sync_columns(specs[view.name])
            log.record(_history_entries(the_plan, specs, services, user, via))
    write_feature_store_yaml(runtime.settings)  # stock Feast (`feast -c`) reads what was just applied
    if from_code:
        runtime.mark_applied()
    return the_plan


def _request_views(store, specs) -> tuple[list, bool, list]:
    """The request views to register as Feast on-demand feature views (those whose inputs are among `specs`),
    whether the registry differs from them, and the registered ones no longer declared (to delete)."""
    from feature_platform.specs import all_request_views

    views = [r for r in all_request_views().values() if all(ref.partition(":")[0] in specs for ref in r.inputs)]
    registered = registered_request_views(store)
    stale = [store.get_on_demand_feature_view(name, allow_registry_cache=False) for name in registered
             if name not in {r.name for r in views}]
    changed = bool(stale) or any(registered.get(r.name) != request_view_description(r) for r in views)
    return views, changed, stale


def refusal_message(the_plan: Plan) -> str:
    lines = []
    for v in the_plan.refused:
        breaking = "; ".join(f"{c.detail} [{c.kind.replace('_', ' ')}]" for c in v.changes if c.breaking)
        lines.append(f"feature view {v.name!r} (v{v.version}) would change in a breaking way in place ({breaking}); "
                     f"declare it as a new version {v.migration.new!r} beside it instead")
    return "\n".join(lines) + "\nnothing was applied; `feature-platform plan` shows the migration plan"


def _check_service_references(specs, services) -> None:
    for service in services.values():
        missing = sorted({ref.partition(":")[0] for ref in service.features} - set(specs))
        if missing:
            raise UnknownFeatureViewError(f"feature service {service.name!r} reads {', '.join(map(repr, missing))}, "
                                          "which no spec declares")


def _history_entries(the_plan: Plan, specs, services, user: str, via: str) -> list[HistoryEntry]:
    entries = []
    for v in the_plan.to_apply:
        spec = specs[v.name]
        changes = [c.as_dict() for c in v.changes]
        if v.action == CREATE:
            created = {"kind": "view_created", "subject": v.name, "breaking": False, "classification": "additive",
                       "detail": f"fields {', '.join(f'{f.name} {f.dtype}' for f in spec.fields)}; "
                                 f"ttl {human_duration(spec.ttl.total_seconds())}"
                                 + (f"; beside {v.previous}" if v.previous else "")}
            changes = [created, *changes]
        entries.append(HistoryEntry(object=v.name, kind="feature_view", action=v.action,
                                    classification=v.classification, user=user, via=via, family=v.family,
                                    version=v.version, fingerprint=spec.fingerprint(), diff=changes))
    for s in the_plan.services:
        if s.action in (CREATE, UPDATE):
            entries.append(HistoryEntry(object=s.name, kind="feature_service", action=s.action,
                                        classification="additive", user=user, via=via,
                                        diff=[{"kind": f"service_{s.action}",
                                               "detail": s.detail or "features " + ", ".join(services[s.name].features)}]))
    return entries


def remove(runtime: Runtime, name: str, specs=None, services=None, training_sets=None, *,
           user: str | None = None) -> dict:
    """Delete feature view `name` from the registry and its values from the online store.

    Refused (`ViewInUseError`) while a spec still declares it (deprecate it, move its consumers, delete
    its spec first) or while a feature service (in code or in the registry) or a training set reads it.
    The offline table is kept: training sets built from it stay reproducible; drop it by hand when done.
    """
    specs, services, sets = _declared(specs, services, training_sets)
    user = user or current_user()
    log = runtime.backends.registry_log()
    with log.lock(), store_errors(runtime.settings, f"removing feature view {name!r}"):
        store = runtime.feast
        store.refresh_registry()
        registered = registered_views(store)
        if name not in registered:
            raise UnknownFeatureViewError(f"feature view {shorten(name)} is not in the registry "
                                          f"(registered: {', '.join(sorted(registered)) or 'none'})")
        if name in specs:
            state = "deprecated" if specs[name].deprecated else "not even deprecated"
            raise ViewInUseError(f"feature view {name!r} is still declared in code ({state}): deprecate it, move its "
                                 "consumers to the new version, delete its spec, then remove it")
        refs = {**registered_services(store), **{n: list(s.features) for n, s in services.items()}}
        using, sets_using = consumers(name, refs, sets)
        if using or sets_using:
            readers = "; ".join(p for p in (f"feature services {', '.join(using)}" if using else "",
                                            f"training sets {', '.join(sets_using)}" if sets_using else "") if p)
            raise ViewInUseError(f"feature view {name!r} is still read by {readers}: move them to another version "
                                 "first")
        # Feast on-demand views of request views reading it go with it (Feast cannot evaluate them without it).
        on_demand = [store.get_on_demand_feature_view(n, allow_registry_cache=False)
                     for n, d in registered_request_views(store).items()
                     if any(ref.partition(":")[0] == name for ref in d.get("inputs", []))]
        fv = store.get_feature_view(name, allow_registry_cache=False)
        sources = [s for s in (fv.stream_source, fv.batch_source) if s is not None]
        store.apply([], objects_to_delete=[fv, *sources, *on_demand], partial=False)  # also deletes its online values
        runtime.backends.watermarks().forget(name)
        description = registered[name]
        log.record([HistoryEntry(
            object=name, kind="feature_view", action="remove", classification="removed", user=user, via="remove",
            family=description.get("family"), version=description.get("version"),
            fingerprint=description.get("fingerprint"),
            diff=[{"kind": "view_removed", "subject": name, "breaking": False, "classification": "removed",
                   "detail": f"online values deleted; offline table kept at {description.get('location')}"}])])
    return {"view": name, "offline_table": description.get("location")}


def resolve_version(runtime: Runtime, family: str, version: int) -> str:
    """The view name of version `version` of `family`, declared in code or registered."""
    specs, _, _ = _declared(None, None, None)
    with store_errors(runtime.settings, "reading the Feast registry"):
        known = {(d.get("family"), d.get("version")): n for n, d in registered_views(runtime.feast).items()}
    known.update({(s.family_name, s.version): s.name for s in specs.values()})
    if (family, version) not in known:
        versions = sorted(v for f, v in known if f == family)
        raise UnknownFeatureViewError(f"{shorten(family)} has no version {shorten(version)} (versions: "
                                      f"{', '.join(map(str, versions)) or 'none'})")
    return known[(family, version)]


def history(runtime: Runtime, name: str | None = None) -> pd.DataFrame:
    """The registry's change history (oldest first), optionally of one view, family or feature service."""
    return runtime.backends.registry_log().entries(name)


__all__ = ["apply", "history", "plan", "remove"]

"""Commands on the Feast registry: `plan`, `apply`, `remove`, `history`, `feast-config`."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

from feature_platform.cli.arguments import add_command, add_json, integer
from feature_platform.cli.output import print_json
from feature_platform.errors import InvalidArgumentError

if TYPE_CHECKING:
    from feature_platform.platform import FeaturePlatform

EXIT_BREAKING = 2  # plan / apply: a breaking change would be applied in place


def register(sub) -> None:
    plan = add_command(
        sub, "plan", help="compare the specs in code with the registry: changes, additive or breaking, and "
        "migration plans; exits 2 when a breaking change would be applied in place",
        description="Compare the feature views and services declared in code with the Feast registry: per view, "
        "create / update / unchanged / refused / not in code, each change classified additive or breaking, and "
        "for a new version its migration plan. Changes nothing. Exits 2 when `apply` would refuse a breaking "
        "change in place.",
        examples=["", "--json"])
    add_json(plan, "the plan")
    plan.set_defaults(run=plan_command)

    apply = add_command(
        sub, "apply", help="apply what `plan` shows to the registry (with history); refuses breaking changes in "
        "place (exit 2, nothing applied)",
        description="Apply what `plan` shows to the Feast registry, under the registry lock, recording each change "
        "in the history. A breaking change to a registered view is refused (exit 2) and nothing is applied: "
        "declare a new version instead.",
        examples=["", "--json"])
    add_json(apply, "the applied plan")
    apply.set_defaults(run=apply_command)

    remove = add_command(
        sub, "remove", help="delete a feature view no longer declared in code from the registry and "
        "the online store; refused while a feature service or training set reads it",
        description="Delete a feature view whose spec was removed from the code: its Feast objects and online "
        "values go, its offline table is kept. Refused while it is still declared, or while a feature service or "
        "training set reads it.",
        examples=["--view user_activity", "--view user_activity --version 2"])
    remove.add_argument("positional_view", nargs="?", metavar="VIEW",
                        help="the same as --view (the older form: `remove user_activity`)")
    remove.add_argument("--view", help="feature view name (e.g. user_activity), or its family with --version")
    remove.add_argument("--version", type=integer(1), help="the version of family VIEW to remove")
    remove.set_defaults(run=remove_command)

    history = add_command(
        sub, "history", help="the registry's change history: who changed which view, when, and how",
        description="The registry's change history, oldest first: when, who (login@host), how (apply, auto-apply "
        "by a materialization, remove), which action on which view or service, its classification and the changes.",
        examples=["", "--view user_activity --json"])
    history.add_argument("--view", help="only this view, family or feature service")
    add_json(history, "one object per change (timestamps in ISO 8601)")
    history.set_defaults(run=history_command)

    feast_config = add_command(
        sub, "feast-config", help="print the feature_store.yaml with which stock Feast (`feast -c DIR`, "
        "FeatureStore(repo_path=DIR), `feast serve`) reads the platform's registry and online store",
        description="Print the feature_store.yaml of this deployment's profile: the registry, online and offline "
        "stores the platform writes, for stock Feast. Every `apply` (and a materialization's first apply) writes "
        "it to $FEATURE_PLATFORM_HOME/feast/feature_store.yaml. Passwords are written as ${FEATURE_PLATFORM_...} "
        "references that Feast reads from the environment, never in clear. With --dir, write the file and print "
        "its directory instead, e.g. `feast -c \"$(feature-platform feast-config --dir)\" feature-views list`.",
        examples=["", "--dir"])
    feast_config.add_argument("--dir", action="store_true",
                              help="write the file into the home and print its directory (for `feast -c`)")
    feast_config.set_defaults(run=feast_config_command)


def plan_json(the_plan) -> str:
    return json.dumps(the_plan.as_dict(), indent=2, default=str)


def plan_command(platform: FeaturePlatform, args) -> int:
    the_plan = platform.plan()
    print(plan_json(the_plan) if args.json else the_plan.render())
    if the_plan.refused:
        print(f"error: BreakingChangeError: {len(the_plan.refused)} breaking change(s) in place; `apply` would refuse "
              "them (declare a new version instead, as the migration plan shows)", file=sys.stderr)
        return EXIT_BREAKING
    return 0


def apply_command(platform: FeaturePlatform, args) -> int:
    the_plan = platform.apply()
    if args.json:
        print(plan_json(the_plan))
        return 0
    print(the_plan.render())
    print(f"applied: {the_plan.summary()}" if the_plan.has_changes else "nothing to apply: the registry matches the code")
    return 0


def remove_command(platform: FeaturePlatform, args) -> int:
    if args.view and args.positional_view and args.view != args.positional_view:
        raise InvalidArgumentError(f"remove: give the view once (--view {args.view} or {args.positional_view})")
    name = args.view or args.positional_view
    if not name:
        raise InvalidArgumentError("remove needs --view VIEW (a feature view, or its family with --version)")
    if args.version is not None:
        name = platform.resolve_version(name, args.version)
    done = platform.remove(name)
    print(f"removed feature view {done['view']} from the registry and the online store; "
          f"its offline table is kept ({done['offline_table']})")
    return 0


def history_command(platform: FeaturePlatform, args) -> int:
    import pandas as pd

    frame = platform.history(args.view)
    if args.json:
        print_json(frame.to_dict("records"))
        return 0
    if frame.empty:
        print("no registry changes recorded" + (f" for {args.view}" if args.view else ""))
        return 0
    for row in frame.itertuples():
        version = "" if pd.isna(row.version) else f" v{row.version}"
        print(f"{row.at:%Y-%m-%d %H:%M:%S} UTC  {row.user:<20} {row.via:<10} {row.action:<7} "
              f"{row.object}{version} ({row.classification})")
        for change in row.diff:
            print(f"    {change.get('detail') or change.get('kind')}"
                  + (f"  [{change['classification']}]" if "classification" in change else ""))
    return 0


def feast_config_command(platform: FeaturePlatform, args) -> int:
    from feature_platform.backends.feast_yaml import feature_store_yaml, write_feature_store_yaml

    if args.dir:
        print(write_feature_store_yaml(platform.settings).parent)
    else:
        print(feature_store_yaml(platform.settings), end="")
    return 0

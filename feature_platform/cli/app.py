"""The entry point: parse the command line, then build the facade and run the command.

Nothing heavy is imported before the command line is parsed: `--help` and a usage error answer at once, and
Feast, Dagster and pandas load only for a command that uses them (test_architecture.py measures it)."""

from __future__ import annotations

import sys
import warnings

from feature_platform.cli import init_repo, reads, registry, runs, serve
from feature_platform.cli.arguments import Parser
from feature_platform.cli.failures import report
from feature_platform.errors import BreakingChangeError
from feature_platform.versioning.deprecation import FeatureViewDeprecationWarning

COMMAND_GROUPS = (runs, reads, registry, serve, init_repo)


def parsers() -> tuple[Parser, dict[str, Parser]]:
    """The command line's parser, and each command's (by name)."""
    top = Parser(
        prog="feature-platform",
        description="Feature views declared once, materialized by Dagster, served by Feast. "
        "Configuration comes from FEATURE_PLATFORM_* environment variables (see README). "
        "`feature-platform COMMAND --help` describes a command, with examples.",
    )
    top.add_argument("--verbose", action="store_true", default=False,
                     help="on failure, also print the Python stack and Dagster's error log")
    sub = top.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.register(sub)
    return top, dict(sub.choices)


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore")  # library deprecation chatter is not for CLI users
    warnings.filterwarnings("always", category=FeatureViewDeprecationWarning)  # ours is: a view they read
    warnings.showwarning = lambda message, *_args, **_kwargs: print(f"warning: {message}", file=sys.stderr)
    args = parsers()[0].parse_args(argv)
    try:
        if not getattr(args, "needs_platform", True):  # `init` writes files: no store, no repository to load
            return args.run(args)
        from feature_platform.platform import FeaturePlatform

        platform = FeaturePlatform.from_env()
        # A failed run's error is printed below, on one line; --verbose shows Dagster's own error log too.
        platform.console_log_level = "ERROR" if args.verbose else "CRITICAL"
        return args.run(platform, args)
    except BreakingChangeError as exc:
        if exc.plan is not None:
            print(registry.plan_json(exc.plan) if getattr(args, "json", False) else exc.plan.render())
        report(exc, verbose=args.verbose)
        return registry.EXIT_BREAKING
    except Exception as exc:  # one line, whatever failed (the stack with --verbose)
        report(exc, verbose=args.verbose)
        return 1

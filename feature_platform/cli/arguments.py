"""The command line's parser and argument types: standard library only, so `--help` starts at once."""

from __future__ import annotations

import argparse
import math
import re

from feature_platform.errors import shorten

EXIT_USAGE = 2  # argparse's status for a bad command line
INTEGER = re.compile(r"-?[0-9]{1,30}")  # ASCII digits, bounded: int() takes other scripts' digits and '1_0'


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one bounded line: argparse would quote a huge bad value whole."""

    def error(self, message: str):
        if len(message) > 300:
            message = f"{message[:300]}...({len(message)} chars)"
        self.exit(EXIT_USAGE, f"error: {message} (`{self.prog} --help` shows the usage)\n")


def common_options() -> Parser:
    """Options every command takes (a parent parser). Their defaults are SUPPRESS so that a subcommand does not
    overwrite what was given before it (`feature-platform --verbose materialize ...`)."""
    common = Parser(add_help=False)
    common.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="on failure, also print the Python stack and Dagster's error log")
    return common


def add_command(sub, name: str, *, help: str, description: str, examples: list[str]) -> Parser:
    """A subcommand with its one-line `help` (in the command list), a `description` and examples (in its --help)."""
    shown = "\n".join(f"  feature-platform {name} {example}".rstrip() for example in examples)
    return sub.add_parser(name, help=help, description=description, parents=[common_options()],
                          epilog=f"example{'s' if len(examples) > 1 else ''}:\n{shown}",
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def add_json(parser: Parser, what: str) -> None:
    parser.add_argument("--json", action="store_true", help=f"print {what} as JSON (a machine-readable document "
                        "on stdout; messages stay on stderr)")


def integer(low: int, high: int | None = None):
    """An argparse type: an integer in [low, high], the bad value quoted short."""
    def parse(text: str) -> int:
        value = int(text) if INTEGER.fullmatch(text) else None
        if value is None or value < low or (high is not None and value > high):
            bound = f"an integer from {low} to {high}" if high is not None else (
                "a positive integer" if low == 1 else f"an integer of at least {low}")
            raise argparse.ArgumentTypeError(f"must be {bound}, not {shorten(text)}")
        return value
    return parse


def host(text: str) -> str:
    """An argparse type: a host name or address to listen on."""
    if not text or len(text) > 255 or any(c.isspace() or not c.isprintable() for c in text):
        raise argparse.ArgumentTypeError(f"must be a host name or address, not {shorten(text)}")
    return text


def positive_seconds(text: str) -> float:
    """An argparse type: a positive, finite number of seconds."""
    try:
        value = float(text) if len(text) <= 40 else math.nan
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {shorten(text)}")
    return value

"""How a failed command reports: one `error:` line on stderr (then the error's `note:` lines), the stack only
with --verbose, and never a credential of the environment."""

from __future__ import annotations

import sys
import traceback

from feature_platform.errors import (
    ConfigurationError,
    InvalidArgumentError,
    InvalidBatchError,
    InvalidDateError,
    InvalidEntityError,
    SourceDataError,
    UnknownFeatureError,
    UnknownFeatureViewError,
)

# Errors in what the user gave (an argument, a setting, a source file): the line is `error: <message>`, the message
# naming what to fix, as argparse's own usage errors are (and as scripts already match). Every other failure is
# `error: <ErrorType>: <message>`.
LINE_LIMIT = 1000  # characters of an error's message on its line
INPUT_ERRORS = (InvalidArgumentError, InvalidDateError, InvalidEntityError, InvalidBatchError, UnknownFeatureViewError,
                UnknownFeatureError, ConfigurationError, SourceDataError)


def error_line(exc: BaseException) -> str:
    """`error: [<ErrorType>: ]<message>` on one line: the lines of a longer message (e.g. a refusal per view, then
    "nothing was applied") joined by `; `, and cut at LINE_LIMIT characters (--verbose shows it whole)."""
    message = "; ".join(line.strip() for line in redacted(str(exc)).splitlines() if line.strip())
    if len(message) > LINE_LIMIT:
        message = f"{message[:LINE_LIMIT]}...({len(message)} chars)"
    if isinstance(exc, INPUT_ERRORS):
        return f"error: {message}"
    return f"error: {type(exc).__name__}: {message}" if message else f"error: {type(exc).__name__}"


def report(exc: BaseException, *, verbose: bool = False) -> None:
    """The failure on stderr: with `verbose`, the stack (causes included) first; then the `error:` line and the
    error's notes (e.g. which partitions of a failed range were kept)."""
    if verbose:
        sys.stderr.write(redacted("".join(traceback.format_exception(exc))))
    print(error_line(exc), file=sys.stderr)
    for note in getattr(exc, "__notes__", ()):
        print(f"note: {redacted(note)}", file=sys.stderr)


def redacted(text: str) -> str:
    """`text` without the environment's credentials (a store's error may quote its connection string)."""
    from feature_platform.config import Settings
    from feature_platform.redact import redact, secrets_of

    try:
        secrets = secrets_of(Settings.from_env())
    except ValueError:  # the configuration itself is what failed: mask what the URL/conninfo patterns find
        secrets = []
    return redact(str(text), secrets)

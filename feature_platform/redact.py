"""Secrets out of text: passwords in URLs and connection strings, and known secret values anywhere.

Used wherever text that may carry a credential leaves the process: error messages wrapping a driver's
exception, logs and anything shown to a user. Over-redacting a message is cheap; a leaked password is not.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote, urlsplit

MASK = "***"

# scheme://user:password@host -> scheme://user:***@host. A scheme starts at a letter not preceded by a letter (the
# same leftmost matches): without that lookbehind a long run of letters is rescanned from each of its positions,
# quadratic time (a 100,000-character message took over a minute).
_URL_PASSWORD = re.compile(r"(?P<head>(?<![a-z])[a-z][a-z0-9+.\-]*://[^:/@\s]*:)[^@\s]*(?=@)", re.IGNORECASE)
# password=value in libpq conninfo (value possibly quoted) and in Feast's Redis connection string
_KEY_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)(?:'(?:[^'\\]|\\.)*'|[^\s,]+)", re.IGNORECASE)


def secrets_of(settings) -> list[str]:
    """The credentials a Settings holds: passwords and webhook URLs (a Slack webhook URL is its own secret)."""
    values = [settings.pg_password, settings.redis_password, settings.alert_webhook_url,
              settings.alert_slack_webhook_url]
    return [v for v in values if v]


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with URL and conninfo passwords masked and every known secret value (raw or URL-quoted) masked."""
    text = _URL_PASSWORD.sub(lambda m: m["head"] + MASK, str(text))
    text = _KEY_PASSWORD.sub(lambda m: m["head"] + MASK, text)
    forms = {form for s in secrets if s for form in (s, quote(s, safe=""), quote(s))}
    for form in sorted(forms, key=len, reverse=True):  # longest first: no secret is left half-masked
        text = text.replace(form, MASK)
    return text


def url_origin(url: str) -> str:
    """Scheme and host of a URL, for logs: webhook paths and queries carry tokens."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # not a URL we can parse: show nothing of it
        return MASK
    return f"{parts.scheme}://{parts.hostname or ''}{port}/{MASK}"


__all__ = ["MASK", "redact", "secrets_of", "url_origin"]

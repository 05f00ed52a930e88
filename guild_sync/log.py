"""Logging set-up that can never print a secret.

Redaction happens on the fully formatted record (message, arguments and traceback together), so a
token that reaches a log line by any path — an exception's repr, a URL, a library's debug output —
is replaced before it is written. The password of any URL (`scheme://user:password@host`) is
replaced as well, known or not: the settings' own URL credentials are also in `secrets`, which
catches them however they were written, and the pattern catches URLs from anywhere else.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable

REDACTED = "[redacted]"
_URL_PASSWORD = re.compile(r"(://[^\s/?#@:]*:)[^\s/?#@]+@")
"""The password of a URL's userinfo: `scheme://user:` is kept, the password up to `@` is not."""


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return _URL_PASSWORD.sub(lambda match: f"{match[1]}{REDACTED}@", text)


class RedactingFormatter(logging.Formatter):
    def __init__(self, fmt: str, secrets: Iterable[str]) -> None:
        super().__init__(fmt)
        self.secrets = tuple(s for s in secrets if s)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self.secrets)


def setup_logging(level: str, secrets: Iterable[str] = ()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        RedactingFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", secrets)
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # discord.py's gateway chatter at DEBUG drowns the sync's own lines.
    logging.getLogger("discord").setLevel(max(logging.INFO, root.level))

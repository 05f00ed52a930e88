"""Text for the log channel: escaped, ping-free, and always under Discord's 2,000 characters.

Names come from users and can hold markdown, mentions and `@everyone`; every name passes through
`literal()` before it reaches a message, and every message passes through `fit()`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import discord

MESSAGE_LIMIT = 2000
_SHORT_MENTION = re.compile(r"<(@[!&]?|#)(\d+)>")
BAR_WIDTH = 20


def literal(text: str) -> str:
    """A user-provided name rendered as plain text: no markdown, no mentions.

    discord.py escapes only mentions of 17-20 digit ids; Discord still renders `<@&1>` or
    `<#5>` as a (deleted) role or channel instead of the characters, so those are broken too."""
    escaped = discord.utils.escape_mentions(discord.utils.escape_markdown(text))
    return _SHORT_MENTION.sub(lambda m: f"<{m[1]}\u200b{m[2]}>", escaped)


def fit(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """Cut a message to the limit, saying that it was cut."""
    if len(text) <= limit:
        return text
    marker = "\n… (cut to fit)"
    return text[: limit - len(marker)] + marker


def progress_bar(done: int, total: int, width: int = BAR_WIDTH) -> str:
    share = 1.0 if total <= 0 else min(1.0, done / total)
    filled = round(share * width)
    return f"`[{'█' * filled}{'░' * (width - filled)}]` {share:.0%}"


def count(n: int) -> str:
    return f"{n:,}"


def field_counts(by_field: Mapping[str, int], site_users: int) -> str:
    """`roles 1,200 (96%), name 3 (0%)`: per field, the users it is written for, and their share
    of the site's users read."""
    return ", ".join(
        f"{name} {count(n)}" + (f" ({n / site_users:.0%})" if site_users else "")
        for name, n in sorted(by_field.items())
    )


def id_list(ids: Iterable[int], limit: int = 25) -> str:
    ids = list(ids)
    shown = ", ".join(str(i) for i in ids[:limit])
    return shown + (f" … and {count(len(ids) - limit)} more" if len(ids) > limit else "")


def site_message(body: object, limit: int = 300) -> str:
    """The site's answer on one line (its error pages are HTML), cut short and fenced so it
    cannot format or ping."""
    text = body if isinstance(body, str) else repr(body)
    text = " ".join(text.split()).replace("`", "ˋ")
    if len(text) > limit:
        text = text[:limit] + "…"
    return f"`{text}`"

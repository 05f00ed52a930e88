"""Every duration, wait and time-to-go a moderator reads, in one place and through arrow.

One module, so a moderator reads every time the same way, in arrow's words (a project
dependency already) rather than in formats written beside it:

- `until`: when something comes ("in 9 seconds", "in 3 minutes"): an ETA, a retry.
- `span`: a configured or whole-second length ("30 seconds", "5 minutes", "2 hours and 5
  minutes"): a timeout, a window, an interval.
- `duration`: a measured length: numeric to a tenth below a minute ("22.9 s"), because arrow has
  no tenths and calls anything under two seconds "instantly" (a role sync of 0.4 s); arrow's
  words from a minute on ("3 minutes and 12 seconds").

Where arrow alone would mislead, this module says so and words it otherwise: below 10 s its
`humanize` says "just now", which on a live message read "done just now" with 31,000 users
left, so every time-to-go under 45 s is said in seconds, and under 2 s "in a second".

No discord.py here: the engine and the journal may word times too.
"""

from __future__ import annotations

import arrow
from arrow.locales import get_locale

SECONDS_BELOW_S = 45.0
"""Times to go under this are said in seconds (arrow says "just now" below 10 s, and from 45 s
"in a minute", which is where its rounding starts to be kind)."""
NUMERIC_BELOW_S = 60.0
"""Measured durations under this stay numeric, to a tenth of a second."""
_MINUTE_S, _HOUR_S = 60, 3600
_ENGLISH = get_locale("en_us")


def until(seconds: float) -> str:
    """When something comes, counted from now: 'in a second', 'in 9 seconds', 'in 3 minutes',
    'in an hour'. Never 'just now': a time to go is not done (a past one says 'in a second')."""
    if round(seconds) < 2:  # arrow: "just now"
        return _ENGLISH.describe("second", 1)
    now = arrow.utcnow()
    later = now.shift(seconds=seconds)
    return later.humanize(now, granularity="second" if seconds < SECONDS_BELOW_S else "auto")


def eta(seconds_left: float | None) -> str:
    """A run's time to go for its live message; None while nothing can be estimated yet."""
    return "estimating…" if seconds_left is None else until(seconds_left)


def span(seconds: float) -> str:
    """A length in words, to the second under an hour and to the minute from one: '30 seconds',
    '5 minutes', 'a minute and 30 seconds', '2 hours and 5 minutes'. Units that are zero are
    left out (arrow would say '2 hours and 0 minutes')."""
    whole = max(1, round(seconds))
    if whole >= _HOUR_S:  # to the minute: the seconds of an hour-long wait are noise
        hours, minutes = divmod(whole // _MINUTE_S, 60)
        units = (("hour", hours, _HOUR_S), ("minute", minutes, _MINUTE_S))
    else:
        minutes, secs = divmod(whole, _MINUTE_S)
        units = (("minute", minutes, _MINUTE_S), ("second", secs, 1))
    granularity = [unit for unit, value, _ in units if value]
    if granularity == ["second"] and whole < 2:  # arrow: "instantly"
        return _ENGLISH.describe("second", 1, only_distance=True)
    now = arrow.utcnow()
    shown = now.shift(seconds=sum(value * size for _, value, size in units))
    return shown.humanize(now, granularity=granularity, only_distance=True)


def duration(seconds: float) -> str:
    """How long something measured took: '0.4 s', '22.9 s', then '3 minutes and 12 seconds'
    (see the module's docstring for why not arrow's words below a minute)."""
    if round(seconds, 1) < NUMERIC_BELOW_S:
        return f"{max(0.0, seconds):.1f} s"
    return span(seconds)

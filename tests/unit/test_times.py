"""How the log channel words times (guild_sync/times.py): arrow's words, except where they would
mislead a moderator."""

from __future__ import annotations

import pytest

from guild_sync.times import duration, eta, span, until


@pytest.mark.parametrize(
    ("seconds", "said"),
    [
        # arrow's humanize says "just now" under 10 s: "done just now" with thousands left.
        (-3.0, "in a second"),
        (0.4, "in a second"),
        (1.6, "in 2 seconds"),
        (9.4, "in 9 seconds"),
        (30.0, "in 30 seconds"),
        (44.4, "in 44 seconds"),
        (60.0, "in a minute"),
        (120.0, "in 2 minutes"),
        (3 * 3600.0, "in 3 hours"),
    ],
)
def test_a_time_to_go_is_never_just_now(seconds: float, said: str) -> None:
    assert until(seconds) == said
    assert eta(seconds) == said


def test_an_eta_not_known_yet_says_so() -> None:
    assert eta(None) == "estimating…"


@pytest.mark.parametrize(
    ("seconds", "said"),
    [
        (1.0, "a second"),  # arrow alone: "instantly"
        (5.0, "5 seconds"),
        (30.0, "30 seconds"),
        (60.0, "a minute"),
        (90.0, "a minute and 30 seconds"),
        (300.0, "5 minutes"),  # SYNC_CHUNKING_TIMEOUT's default
        (900.0, "15 minutes"),  # SYNC_GUARD_TIMEOUT's default
        (3600.0, "an hour"),
        (3630.0, "an hour"),  # to the minute from an hour on
        (7500.0, "2 hours and 5 minutes"),
        (6 * 3600 * 0.95, "5 hours and 42 minutes"),  # a reconcile interval of 6 h, jittered
    ],
)
def test_a_span_is_in_words_without_zero_units(seconds: float, said: str) -> None:
    assert span(seconds) == said


@pytest.mark.parametrize(
    ("seconds", "said"),
    [
        (0.0, "0.0 s"),
        (0.4, "0.4 s"),  # a role sync: arrow would say "instantly"
        (22.94, "22.9 s"),  # the outage's deletion, as the README shows it
        (59.94, "59.9 s"),
        (59.96, "a minute"),  # would read "60.0 s"
        (192.0, "3 minutes and 12 seconds"),
        (3725.0, "an hour and 2 minutes"),
    ],
)
def test_a_measured_duration_is_numeric_under_a_minute_then_words(
    seconds: float, said: str
) -> None:
    assert duration(seconds) == said

"""Leavers verified before they are written: a sample of them is looked up on Discord first.

A user diff on a partial member cache marks every member the cache lacks as having left, and
nothing in the cache tells it from a whole one (discord.py's `guild.chunked` compares the cache
with a member count that may be just as short). python-discord/bot looks up every member it
would mark as left; on a big guild that is one Discord request per leaver, so this looks up a
random sample of them (at most `LEAVER_SAMPLE`): if any is still a member, the cache is
incomplete and the run marks nobody as left.

Where it fits: the diff is streamed and every other write is queued as the site's pages are
read, but a random sample of the leavers is only known once every page has been read, and no
leave may be sent before the sample is checked. So a run holds its leaves and only them: each
leaver's id goes into an `array('q')` (8 bytes, at most one per site user: the same bound as the
diff's own array of member ids), and after the walk the sample is looked up and the held leaves
are queued, or dropped. The other ways were worse:

- checking the plan: only automatic runs plan first (for the guard), and a moderator's run
  does not; a plan before every run is a second full pass over the site's users, and the cache
  may change between the plan and the run;
- checking the first leavers found: the walk goes by id, so those are the oldest accounts, not
  a sample of who the cache lacks; and the leaves must still wait for the answer;
- reservoir sampling without holding: the leaves would still have to wait, so they would have
  to be read from the site again.

The lookups are sequential (at most 50 requests; discord.py waits out Discord's rate limits).
A lookup that fails (Discord unreachable, say) leaves the question open, so nobody is marked as
left then either. A guild with no one to ask (the in-memory guild of tests and benchmarks is its
own authority) has no `still_members`, and its leaves stream as they are found.
"""

from __future__ import annotations

import logging
import random
from array import array
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)

LEAVER_SAMPLE = 50
"""At most this many users a run would mark as left are looked up on Discord first."""

MemberCheck = Callable[[Sequence[int]], Awaitable[Collection[int]]]
"""`GuildState.still_members`, where a guild has it: which of these ids Discord still counts as
members of the guild (an id it answers 404 Unknown Member for is not one)."""


@dataclass(frozen=True)
class LeaverCheck:
    """What the lookup of a sample of the leavers found."""

    leaving: int
    sampled: int
    still_members: tuple[int, ...] = ()
    error: str = ""

    @property
    def confirmed(self) -> bool:
        """Every sampled leaver is gone: the leaves may be written."""
        return not self.still_members and not self.error


class HeldLeaves:
    """The ids of the users a run would mark as left, held until a sample of them is checked."""

    def __init__(self) -> None:
        self.ids = array("q")

    def add(self, user_id: int) -> None:
        self.ids.append(user_id)

    def __len__(self) -> int:
        return len(self.ids)

    async def check(self, still_members: MemberCheck, rng: random.Random) -> LeaverCheck:
        sample = rng.sample(self.ids, min(LEAVER_SAMPLE, len(self.ids)))
        try:
            present = tuple(sorted(await still_members(sample)))
        except Exception as error:  # any failure leaves the question open
            log.warning("could not look up %d leavers on Discord: %r", len(sample), error)
            return LeaverCheck(len(self.ids), len(sample), error=str(error) or repr(error))
        return LeaverCheck(len(self.ids), len(sample), present)

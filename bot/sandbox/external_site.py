"""An operator's own site (a staging copy) in place of the sandbox site, for rehearsals.

The simulated guild is written into the site through its API, the way the bot writes, so the
rehearsal measures the site the operator will really run against. A staging site is not a
throwaway: nothing here deletes a user, a site that already holds data is refused unless the
operator allows it, and with their consent the records that were there are hidden from the
rehearsal's checks but watched, so any change the rehearsal made to them is reported.
"""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, TextIO

from bot.sandbox.world import SandboxGuild
from guild_sync.site.client import SiteClient
from guild_sync.site.errors import SiteAPIError
from guild_sync.site.records import Role, User

SEED_CHUNK = 1000
"""Users per bulk create: the size the site is known to handle (see site-api.md)."""
SHOWN_IDS = 5


class SiteRefused(Exception):
    """The rehearsal will not touch this site; the message is one line for the operator."""


@dataclass(frozen=True)
class ExternalSite:
    url: str
    token: str
    allow_existing: bool

    def __repr__(self) -> str:
        return f"ExternalSite(url={self.url!r}, allow_existing={self.allow_existing})"


@dataclass
class ExistingRecords:
    """What the site held before the rehearsal: roles as they were, users as fingerprints (a
    hash per id keeps a large staging site's snapshot small)."""

    roles: dict[int, Role] = field(default_factory=dict)
    users: dict[int, int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.roles or self.users)

    def describe(self) -> str:
        return f"{len(self.users):,} users and {len(self.roles):,} roles"


class RehearsalClient(SiteClient):
    """A client whose reads show only the rehearsal's records, so the world's checks (and the
    scenarios' waits) judge those alone; every read also notes which existing records changed."""

    def __init__(self, site: ExternalSite, *, timeout: float = 120.0) -> None:
        super().__init__(site.url, site.token, timeout=timeout)
        self.existing = ExistingRecords()
        self._changed_roles: list[str] = []
        self._changed_users: list[str] = []

    async def list_roles(self) -> list[Role]:
        roles = await super().list_roles()
        before = self.existing.roles
        self._changed_roles = [
            f"existing role {role.id} ({role.name!r}) was changed"
            for role in roles
            if role.id in before and before[role.id] != role
        ]
        gone = before.keys() - {role.id for role in roles}
        self._changed_roles += [f"existing role {role_id} was deleted" for role_id in gone]
        return [role for role in roles if role.id not in before]

    async def iter_user_pages(self, page_size: int = 2500) -> AsyncIterator[list[User]]:
        fingerprints = self.existing.users
        changed: list[str] = []
        seen = 0
        async for page in super().iter_user_pages(page_size):
            ours = []
            for user in page:
                fingerprint = fingerprints.get(user.id)
                if fingerprint is None:
                    ours.append(user)
                    continue
                seen += 1
                if hash(user) != fingerprint:
                    changed.append(f"existing user {user.id} was changed")
            yield ours
        if seen < len(fingerprints):
            changed.append(f"{len(fingerprints) - seen:,} existing users are gone")
        self._changed_users = changed

    def existing_changes(self) -> list[str]:
        """Changes to the records that were there, as of the last full read of the site."""
        return self._changed_roles + self._changed_users


async def prepare(
    client: RehearsalClient,
    site: ExternalSite,
    guild: SandboxGuild,
    *,
    seed: bool,
    out: TextIO = sys.stdout,
) -> None:
    """Check that the rehearsal may write to this site, then seed it to match the guild.

    Raises SiteRefused before anything is written."""
    roles = await survey(
        client,
        site,
        refusal=(
            "A rehearsal writes a simulated guild into the site and never deletes anything, so "
            "use an empty staging site, or pass --allow-existing to add the simulated members "
            "beside the existing records (ids are checked for collisions; the bot then runs "
            "without its start-up sync, which would mark the existing users as left and delete "
            "the existing roles)."
        ),
    )
    if roles is not None:
        client.existing = await snapshot(client, roles)
        refuse_collisions(client.existing, guild)
        _say(
            out,
            f"The site already holds {client.existing.describe()}: --allow-existing leaves "
            "them as they are. The bot runs without its start-up sync (a full sync would mark "
            "those users as left and delete those roles); a moderator's dry run shows what it "
            "would change, and the final check reports any change to them.",
        )
    if seed:
        await seed_site(client, guild, out)


async def survey(client: SiteClient, site: ExternalSite, refusal: str) -> list[Role] | None:
    """None for an empty site; its roles when it holds records and the operator allows that.

    Refuses (with `refusal` as the advice) a site that holds records, unless allowed."""
    await _check_reachable(client, site)
    roles = await client.list_roles()
    users = await _user_count(client)
    if not roles and not users:
        return None
    if not site.allow_existing:
        raise SiteRefused(
            f"the site at {site.url} already holds {users:,} users and {len(roles):,} roles; "
            f"nothing was written. {refusal}"
        )
    return roles


async def _check_reachable(client: SiteClient, site: ExternalSite) -> None:
    try:
        healthy = await client.healthcheck()
    except SiteAPIError as error:
        raise SiteRefused(f"the site at {site.url} did not answer: {_one_line(error)}") from None
    if not healthy:
        raise SiteRefused(f"the site at {site.url} answered its health check with no 'ok'")
    try:
        await client.request("GET", "bot/roles")
    except SiteAPIError as error:
        raise SiteRefused(f"the site refused the bot's API: {_one_line(error)}") from None


async def _user_count(client: SiteClient) -> int:
    page = await client.request("GET", "bot/users", params={"page": 1, "page_size": 1})
    count = page.get("count") if isinstance(page, dict) else None
    if not isinstance(count, int):
        raise SiteRefused("the site's user list has no count; is this the bot API's base URL?")
    return count


async def snapshot(client: SiteClient, roles: list[Role]) -> ExistingRecords:
    """The site's records before the rehearsal, read page by page."""
    existing = ExistingRecords(roles={role.id: role for role in roles})
    async for page in SiteClient.iter_user_pages(client):
        existing.users.update((user.id, hash(user)) for user in page)
    return existing


def refuse_collisions(existing: ExistingRecords, guild: SandboxGuild) -> None:
    """The emulator's ids are snowflakes of the run's own time, so they are newer than any real
    Discord id a staging copy holds; a site with made-up ids could still hold one of them."""
    users = sorted(existing.users.keys() & guild.state.members.keys())
    roles = sorted(existing.roles.keys() & guild.state.roles.keys())
    if users or roles:
        shown = ", ".join(str(i) for i in (users + roles)[:SHOWN_IDS])
        raise SiteRefused(
            f"{len(users):,} users and {len(roles):,} roles of the simulated guild have ids the "
            f"site already uses (e.g. {shown}); nothing was written. Run again: the ids are "
            "time-based and differ every run."
        )


async def seed_site(client: SiteClient, guild: SandboxGuild, out: TextIO = sys.stdout) -> None:
    users = sorted(guild.expected_users(), key=lambda user: user.id)
    await seed_records(client, guild.expected_roles(), users, len(users), out)


async def seed_records(
    client: SiteClient, roles: Iterable[Role], users: Iterable[User], total: int, out: TextIO
) -> None:
    """Roles one POST each (the site has no bulk role create), then users in bulk creates of
    SEED_CHUNK, the size the bot's own creates have; `users` may be a generator."""
    for role in roles:
        await client.create_role(role)
    progress = _Progress(out, total)
    done = 0
    remaining = iter(users)
    while chunk := list(islice(remaining, SEED_CHUNK)):
        await client.create_users(chunk)
        done += len(chunk)
        progress.show(done)
    progress.done()


class _Progress:
    """One line that updates in place on a terminal, a line per tenth otherwise (logs, pipes)."""

    def __init__(self, out: TextIO, total: int) -> None:
        self.out = out
        self.total = max(total, 1)
        self.started = time.monotonic()
        self.live = out.isatty()
        self._next_tenth = 1

    def show(self, done: int) -> None:
        text = (
            f"» Seeding the site: {done:,} / {self.total:,} users "
            f"({time.monotonic() - self.started:.1f} s)"
        )
        if self.live:
            self.out.write(f"\r{text}")
        elif done * 10 >= self._next_tenth * self.total:
            self.out.write(f"{text}\n")
            self._next_tenth = done * 10 // self.total + 1
        self.out.flush()

    def done(self) -> None:
        if self.live:
            self.out.write("\n")
            self.out.flush()


async def site_stats(client: SiteClient) -> dict[str, Any] | None:
    """The sandbox site's private counters; None for a site that does not have them (404)."""
    try:
        stats = await client.request("GET", "_sandbox/stats")
    except SiteAPIError as error:
        if error.status == 404:
            return None
        raise
    return stats if isinstance(stats, dict) else None


def _one_line(error: SiteAPIError) -> str:
    return " ".join(error.summary().split())


def _say(out: TextIO, text: str) -> None:
    out.write(f"» {text}\n")
    out.flush()

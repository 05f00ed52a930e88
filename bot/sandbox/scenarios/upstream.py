"""The real site's data: the records python-discord/bot's syncer has written for years."""

from __future__ import annotations

from bot.sandbox.sandbox import Sandbox, expect
from bot.sandbox.scenarios.registry import scenario
from bot.sandbox.world import SandboxGuild, upstream_users
from guild_sync.site.records import User

FORMER_MEMBERS = 200
"""Users who left before the bot took over: upstream kept their last roles, `in_guild` false."""
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def _upstream_site(guild: SandboxGuild) -> list[User]:
    return upstream_users(guild, former_members=FORMER_MEMBERS)


@scenario(
    "upstream-data",
    "the site holds what python-discord/bot's syncer wrote (every member's roles with "
    "@everyone, former members with their last roles): the start-up sync, `!sync users` and "
    "`!sync roles` write nothing",
    default_members=20_000,
    site_users=_upstream_site,
    reads_site_counters=True,
)
async def upstream_data(sandbox: Sandbox) -> None:
    sandbox.command("!sync users")
    await sandbox.wait_for_summary("User sync", within=sandbox.run_timeout())
    sandbox.command("!sync roles")
    await sandbox.wait_for_summary("Role sync", within=sandbox.run_timeout())
    # The site's own counts since it started, after the seed: the bot's requests only.
    stats = await sandbox.site_stats()
    writes = {
        route: count
        for route, count in stats["by_route"].items()
        if route.split(" ", 1)[0] in WRITE_METHODS
    }
    page = await sandbox.client.request("GET", "bot/users", params={"page": 1, "page_size": 1})
    sandbox.facts.update(
        upstream_users_seeded=page["count"],
        user_writes=sum(n for route, n in writes.items() if "/bot/users" in route),
        role_writes=sum(n for route, n in writes.items() if "/bot/roles" in route),
        site_writes=writes,
    )
    expect(not writes, f"the bot rewrote the upstream syncer's records: {writes}")

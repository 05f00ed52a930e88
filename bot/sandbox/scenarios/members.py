"""Member churn through gateway events: joins, leaves, renames and role changes."""

from __future__ import annotations

import asyncio

from bot.sandbox.sandbox import Sandbox
from bot.sandbox.scenarios.registry import scenario
from bot.sandbox.world import HELPERS

JOINS = 2_000


@scenario(
    "mass-join",
    f"{JOINS:,} members join within seconds; the queue sends them in a few bulk requests",
    default_members=20_000,
    site_cost="real",
    rehearsable=True,
)
async def mass_join(sandbox: Sandbox) -> None:
    sandbox.say(f"{JOINS:,} new members are joining.")
    for index in range(JOINS):
        sandbox.discord.add_member(sandbox.guild.id, f"newcomer{index:05d}")
    await sandbox.wait_until_site_matches()


@scenario(
    "member-updates",
    "members leave, change nicknames and usernames, and gain roles while nobody runs a command",
    default_members=20_000,
    site_cost="real",
    rehearsable=True,
)
async def member_updates(sandbox: Sandbox) -> None:
    guild, discord = sandbox.guild, sandbox.discord
    helpers = guild.role_id(HELPERS)
    ids = [m for m in list(guild.state.members) if m not in guild.protected_ids()][:600]
    sandbox.say("600 members leave, rename themselves or become helpers.")
    for n, user_id in enumerate(ids):
        if n % 3 == 0:
            discord.remove_member(guild.id, user_id)
        elif n % 3 == 1:
            discord.update_member(guild.id, user_id, nick=f"renamed {n}")
            discord.rename_user(user_id, username=f"new.name.{n}")
        else:
            discord.update_member(
                guild.id, user_id, roles=[*guild.state.members[user_id].roles, helpers]
            )
        if n % 100 == 0:
            await asyncio.sleep(0)
    await sandbox.wait_until_site_matches()

"""The outage: a moderator deletes a role that every member holds."""

from __future__ import annotations

from bot.sandbox.sandbox import Sandbox
from bot.sandbox.scenarios.registry import scenario
from bot.sandbox.world import DEVELOPERS


@scenario(
    "role-delete",
    "a role held by every member is deleted on Discord: strip it in chunks, then delete it",
    default_members=80_000,
    site_cost="real",
    rehearsable=True,
)
async def role_delete(sandbox: Sandbox) -> None:
    role_id = sandbox.guild.role_id(DEVELOPERS)
    sandbox.say(f"Deleting the role {DEVELOPERS}, held by all {sandbox.members:,} members.")
    sandbox.discord.delete_role(sandbox.guild.id, role_id)
    await sandbox.wait_for_summary("Role deletion", within=sandbox.run_timeout())

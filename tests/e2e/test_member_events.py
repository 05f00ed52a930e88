"""Member and user events reach the site through the engine's queue, with no run of their own."""

import pytest

from bot.sandbox.world import HELPERS
from guild_sync.site.records import User
from tests.e2e.harness import NO_STARTUP, running_bot

pytestmark = pytest.mark.timeout(60)

KNOWN_LEAVER = 4242
"""A user id the site holds as having left, unknown to the guild (ids are far below snowflakes)."""


def seed_known_leaver(guild, site) -> None:
    site.store.seed([], [User(KNOWN_LEAVER, "oldname", "Old Name", 0, frozenset(), False)])


async def test_joins_leaves_and_changes_reach_the_site(tmp_path):
    async with running_bot(
        tmp_path, members=50, settings=NO_STARTUP, prepare=seed_known_leaver
    ) as h:
        guild_id, helpers = h.guild.id, h.guild.role_id(HELPERS)
        leaver = h.guild.ordinary_member_id
        unnamed = [
            m.id
            for m in h.guild.state.members.values()
            if m.nick is None and m.id not in h.guild.protected_ids() | {leaver}
        ]
        renamed, nicknamed = unnamed[:2]

        newcomer = h.discord.add_member(
            guild_id, "newcomer", global_name="New *Comer*", roles=[helpers]
        )
        h.discord.remove_member(guild_id, leaver)
        h.discord.guilds.add_member(guild_id, username="back_again", user_id=KNOWN_LEAVER)
        h.discord.update_member(guild_id, nicknamed, nick="Nicky", roles=[helpers])
        h.discord.rename_user(renamed, username="fresh_name", global_name="Fresh Name")
        await h.until_site_matches()

        joined = await h.site_user(newcomer.id)
        assert (joined.name, joined.display_name) == ("newcomer", "New *Comer*")
        assert joined.in_guild and joined.roles == {guild_id, helpers}  # @everyone is the guild id
        assert (await h.site_user(leaver)).in_guild is False
        rejoined = await h.site_user(KNOWN_LEAVER)
        assert rejoined.in_guild and rejoined.name == "back_again"
        assert rejoined.display_name == "back_again"
        changed = await h.site_user(nicknamed)
        assert changed.display_name == "Nicky" and changed.roles == {guild_id, helpers}
        fresh = await h.site_user(renamed)
        assert (fresh.name, fresh.display_name) == ("fresh_name", "Fresh Name")

        h.discord.guilds.add_member(guild_id, username="unused", user_id=leaver)
        await h.until_site_matches()
        back = await h.site_user(leaver)
        assert back.in_guild and back.roles == {guild_id}, "rejoined without the old roles"
        assert back.name == h.discord.world.users[leaver].username

        assert h.log_texts() == [], "member events write quietly; only errors are posted"

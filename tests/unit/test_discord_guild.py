"""The cog's records of discord.py objects, as python-discord/bot's syncer writes them."""

from types import SimpleNamespace

from guild_sync.exts.sync._discord_guild import member_record

GUILD = 1000


def role(role_id: int, position: int):
    return SimpleNamespace(id=role_id, position=position, is_default=lambda: role_id == GUILD)


def test_a_members_roles_include_the_default_role_as_upstream_writes_them():
    # discord.py's Member.roles: the default role (@everyone, id = the guild's id) first.
    roles = [role(GUILD, 0), role(5, 1), role(9, 2)]
    member = SimpleNamespace(
        id=42, name="alice", display_name="Alice", discriminator="0", roles=roles
    )
    record = member_record(member)  # type: ignore[arg-type]
    upstream = [r.id for r in member.roles]  # bot/exts/backend/sync/_syncers.py
    assert record.roles == frozenset(upstream) == {GUILD, 5, 9}
    assert (record.name, record.display_name, record.discriminator) == ("alice", "Alice", 0)
    assert record.in_guild

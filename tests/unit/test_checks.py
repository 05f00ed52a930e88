"""Who may run sync commands: moderators of the configured guild, typing in that guild."""

from types import SimpleNamespace
from unittest.mock import MagicMock

import discord
import pytest

from guild_sync.exts.sync._checks import OutsideGuild, check_command, is_moderator

GUILD, OTHER = 1000, 2000
MODERATORS = 77


def member(guild_id: int, *, administrator: bool = False, roles=()) -> discord.Member:
    fake = MagicMock(spec=discord.Member)
    fake.guild = SimpleNamespace(id=guild_id)
    fake.guild_permissions = discord.Permissions(administrator=administrator)
    fake.roles = [SimpleNamespace(id=role_id) for role_id in roles]
    return fake


def test_an_administrator_of_another_guild_is_no_moderator():
    admin = member(OTHER, administrator=True)
    assert not is_moderator(admin, [MODERATORS], GUILD)
    assert is_moderator(member(GUILD, administrator=True), [MODERATORS], GUILD)
    assert is_moderator(member(GUILD, roles=[MODERATORS]), [MODERATORS], GUILD)
    assert not is_moderator(member(OTHER, roles=[MODERATORS]), [MODERATORS], GUILD)
    assert not is_moderator(member(GUILD), [MODERATORS], GUILD)


def test_commands_outside_the_configured_guild_are_refused_as_such():
    dm_author = MagicMock(spec=discord.User)
    with pytest.raises(OutsideGuild):
        check_command(SimpleNamespace(guild=None, author=dm_author), GUILD, [MODERATORS])
    other = SimpleNamespace(
        guild=SimpleNamespace(id=OTHER), author=member(OTHER, administrator=True)
    )
    with pytest.raises(OutsideGuild):
        check_command(other, GUILD, [MODERATORS])
    here = SimpleNamespace(
        guild=SimpleNamespace(id=GUILD), author=member(GUILD, roles=[MODERATORS])
    )
    assert check_command(here, GUILD, [MODERATORS])
    outsider = SimpleNamespace(guild=SimpleNamespace(id=GUILD), author=member(GUILD))
    assert not check_command(outsider, GUILD, [MODERATORS])

"""The fast paths of the model agree with the plain ones."""

from __future__ import annotations

import json

from bot.sandbox.discord import LoopbackDiscord
from bot.sandbox.discord.snowflake import SnowflakeFactory, snowflake_time


def test_member_json_template_matches_the_dict_form() -> None:
    emulator = LoopbackDiscord()
    guild = emulator.create_guild(member_count=30)
    emulator.add_member(guild.id, 'quote" back\\slash ünïcode', nick="tab\there", roles=[])
    emulator.rename_user(guild.owner_id, global_name=None)
    for member in guild.members.values():
        assert json.loads(member.json()) == member.to_json()


def test_snowflakes_stay_unique_increasing_and_within_63_bits() -> None:
    factory = SnowflakeFactory()
    ids = [factory.next() for _ in range(20_000)]  # several times the 4,096 per millisecond
    assert ids == sorted(set(ids))
    assert ids[-1] < 2**63 - 1
    assert snowflake_time(ids[0]).year >= 2024

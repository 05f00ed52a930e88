"""REST faults a test switches on, and what an unmodified discord.py 2.7 does with each: global
429s (waits, every route), Cloudflare bans (raises at once), 502s (retried), 503s (raised at
once), 30046 on edits of old messages (retried five times, then raised), and the interaction
routes' own limits (waited out)."""

from __future__ import annotations

import time

import aiohttp
import discord
import pytest
from discord.ext import commands

from bot.sandbox.discord import LoopbackDiscord
from bot.sandbox.discord.ratelimit import RateLimitRule

from .conftest import make_bot, running

CLOCK_SLACK_S = 0.05


def _log_channel(emulator: LoopbackDiscord) -> int:
    guild = emulator.create_guild(member_count=10)
    return emulator.channel_named(guild.id, "bot-log")


def _text_channel(bot: commands.Bot, channel_id: int) -> discord.TextChannel:
    channel = bot.get_channel(channel_id)
    assert isinstance(channel, discord.TextChannel)
    return channel


async def test_a_global_429_stops_every_route_until_retry_after(emulator: LoopbackDiscord) -> None:
    channel_id = _log_channel(emulator)
    async with running(emulator, make_bot()) as bot:
        channel = _text_channel(bot, channel_id)
        message = await channel.send("before")
        emulator.rate_limit_globally(1, retry_after=0.5)
        started = time.perf_counter()
        await message.edit(content="after")  # answered 429 global, waited out, retried
        elapsed = time.perf_counter() - started
        await channel.send("next")
    assert emulator.faults_served["global_429"] == 1
    assert elapsed >= 0.5 - CLOCK_SLACK_S
    assert [m.content for m in emulator.channel_messages(channel_id)] == ["after", "next"]
    [hit] = emulator.rate_limit_hits
    assert (hit.bucket, hit.retry_after) == ("global", 0.5)


async def test_a_global_429_carries_discords_global_headers(emulator: LoopbackDiscord) -> None:
    channel_id = _log_channel(emulator)
    emulator.rate_limit_globally(1, retry_after=2.5)
    url = f"{emulator.api_url}/channels/{channel_id}/messages"
    async with aiohttp.ClientSession(headers={"Authorization": f"Bot {emulator.token}"}) as http:
        async with http.post(url, json={"content": "x"}) as response:
            assert response.status == 429
            headers, body = response.headers, await response.json()
        async with http.post(url, json={"content": "y"}) as response:
            assert response.status == 200, "one global 429 was asked for"
    assert body == {"message": "You are being rate limited.", "retry_after": 2.5, "global": True}
    assert headers["X-RateLimit-Global"] == "true"
    assert headers["X-RateLimit-Scope"] == "global"
    assert headers["Retry-After"] == "3" and headers["Via"]


async def test_a_cloudflare_ban_is_raised_by_discord_py_at_once(emulator: LoopbackDiscord) -> None:
    channel_id = _log_channel(emulator)
    async with running(emulator, make_bot()) as bot:
        channel = _text_channel(bot, channel_id)
        emulator.ban_by_cloudflare(1, retry_after=60.0, routes=["message_send"])
        started = time.perf_counter()
        with pytest.raises(discord.HTTPException) as raised:
            await channel.send("banned")
        assert time.perf_counter() - started < 1.0, "discord.py waited instead of raising"
        await channel.send("after the ban")
    assert raised.value.status == 429 and raised.value.code == 0
    assert emulator.faults_served["cloudflare_429"] == 1
    assert [m.content for m in emulator.channel_messages(channel_id)] == ["after the ban"]
    assert emulator.rate_limit_hits == []


async def test_a_cloudflare_ban_has_no_via_header(emulator: LoopbackDiscord) -> None:
    emulator.ban_by_cloudflare(1)
    me = emulator.api_url + "/users/@me"
    async with aiohttp.ClientSession() as http, http.get(me) as response:
        assert response.status == 429
        assert "Via" not in response.headers
        assert int(response.headers["Retry-After"]) == 60
        assert (await response.json())["code"] == 0


async def test_a_502_on_an_edit_is_retried_by_discord_py(emulator: LoopbackDiscord) -> None:
    channel_id = _log_channel(emulator)
    async with running(emulator, make_bot()) as bot:
        message = await _text_channel(bot, channel_id).send("v0")
        emulator.fail_requests(1, status=502, routes=["message_edit"])
        started = time.perf_counter()
        await message.edit(content="v1")
        elapsed = time.perf_counter() - started
    assert emulator.faults_served["server_error_502"] == 1
    assert elapsed >= 1.0 - CLOCK_SLACK_S, "discord.py sleeps 1 s before its second try"
    [stored] = emulator.channel_messages(channel_id)
    assert [v.content for v in stored.versions] == ["v0", "v1"]


async def test_a_503_on_an_edit_is_raised_by_discord_py_at_once(
    emulator: LoopbackDiscord,
) -> None:
    channel_id = _log_channel(emulator)
    async with running(emulator, make_bot()) as bot:
        channel = _text_channel(bot, channel_id)
        message = await channel.send("v0")
        emulator.fail_requests(2, status=503)  # message edits and sends
        with pytest.raises(discord.DiscordServerError) as raised:
            await message.edit(content="v1")
        with pytest.raises(discord.DiscordServerError):
            await channel.send("lost")
        await message.edit(content="v2")
    assert raised.value.status == 503
    assert emulator.faults_served["server_error_503"] == 2
    [stored] = emulator.channel_messages(channel_id)
    assert [v.content for v in stored.versions] == ["v0", "v2"]


async def test_edits_of_a_message_older_than_an_hour_meet_30046(
    emulator: LoopbackDiscord,
) -> None:
    channel_id = _log_channel(emulator)
    async with running(emulator, make_bot()) as bot:
        channel = _text_channel(bot, channel_id)
        old = await channel.send("old")
        fresh = await channel.send("fresh")
        emulator.backdate_message(channel_id, old.id)
        emulator.limit_old_message_edits(allowed=1, retry_after=0.1)
        await old.edit(content="old, edited once")
        with pytest.raises(discord.HTTPException) as raised:
            await old.edit(content="old, edited twice")
        await fresh.edit(content="fresh, edited")
        emulator.limit_old_message_edits(None)
        await old.edit(content="old, limit off")
    assert (raised.value.status, raised.value.code) == (429, 30046)
    assert "older than 1 hour" in raised.value.text
    # discord.py took the 429 (it carries Via) as a rate limit: five tries, then it raised.
    assert emulator.faults_served["old_message_edit_30046"] == 5
    stored = {m.id: m for m in emulator.channel_messages(channel_id)}
    assert [v.content for v in stored[old.id].versions] == [
        "old",
        "old, edited once",
        "old, limit off",
    ]
    assert stored[fresh.id].content == "fresh, edited"


async def test_a_30046_answer_is_discords_shape(emulator: LoopbackDiscord) -> None:
    channel_id = _log_channel(emulator)
    url = f"{emulator.api_url}/channels/{channel_id}/messages"
    emulator.limit_old_message_edits(allowed=0, retry_after=30.0)
    async with aiohttp.ClientSession(headers={"Authorization": f"Bot {emulator.token}"}) as http:
        async with http.post(url, json={"content": "v0"}) as response:
            message_id = int((await response.json())["id"])
        async with http.patch(f"{url}/{message_id}", json={"content": "young"}) as response:
            assert response.status == 200, "a young message is not limited"
        emulator.backdate_message(channel_id, message_id)
        async with http.patch(f"{url}/{message_id}", json={"content": "old"}) as response:
            assert response.status == 429
            headers, body = response.headers, await response.json()
    assert body["code"] == 30046 and body["global"] is False and body["retry_after"] == 30.0
    assert body["message"].startswith("Maximum number of edits to messages older than 1 hour")
    assert headers["X-RateLimit-Scope"] == "shared" and headers["Via"]
    [stored] = emulator.channel_messages(channel_id)
    assert [v.content for v in stored.versions] == ["v0", "young"]


class Followups(discord.ui.View):
    @discord.ui.button(label="Many", custom_id="panel:many")
    async def many(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await interaction.response.send_message("answer 0")
        for n in range(1, 6):
            await interaction.followup.send(f"answer {n}")
        await interaction.edit_original_response(content="answer 0, edited")


def followups_bot() -> commands.Bot:
    bot = make_bot()

    @bot.command()
    async def panel(ctx: commands.Context) -> None:
        await ctx.send("Panel", view=Followups(timeout=30))

    return bot


async def _click_many(emulator: LoopbackDiscord) -> tuple[list[str], float]:
    """A member clicks a button whose callback answers, sends five follow-ups and edits its
    answer; the follow-ups' contents in order and how long they took."""
    guild = emulator.create_guild(member_count=10)
    channel_id = emulator.channel_named(guild.id, "general")
    async with running(emulator, followups_bot()):
        emulator.post_message(channel_id, guild.owner_id, "!panel")
        await emulator.wait_until(lambda: emulator.message_stats.created_by_bot == 1)
        [_, panel] = emulator.channel_messages(channel_id)
        # Armed for any bot route, it is never served: interaction endpoints are exempt.
        emulator.rate_limit_globally(1, retry_after=0.1)
        started = time.perf_counter()
        record = await emulator.click_button(
            panel.id, "panel:many", channel_id=channel_id, member_id=guild.owner_id
        )
        await emulator.wait_until(lambda: emulator.message_stats.edits == 1)
        elapsed = time.perf_counter() - started
    assert emulator.faults_served["global_429"] == 0
    messages = {m.id: m for m in emulator.channel_messages(channel_id)}
    assert messages[record.original_message_id].content == "answer 0, edited"
    return [messages[i].content for i in record.followup_message_ids], elapsed


async def test_interaction_followups_wait_for_their_advertised_limit() -> None:
    async with LoopbackDiscord() as emulator:
        emulator.limit_interaction_routes({"webhook_send": RateLimitRule(2, 1.0)})
        followups, elapsed = await _click_many(emulator)
        assert followups == [f"answer {n}" for n in range(1, 6)]
        assert emulator.rate_limit_hits == [], "discord.py waits on X-RateLimit-Remaining: 0"
        assert elapsed >= 2 * 1.0 - CLOCK_SLACK_S, "five follow-ups at two a second"
        assert emulator.unimplemented_calls == []


async def test_interaction_followups_past_an_unadvertised_limit_get_429_and_are_retried() -> None:
    async with LoopbackDiscord(advertise_rate_limits=False) as emulator:
        emulator.limit_interaction_routes({"webhook_send": RateLimitRule(2, 1.0)})
        followups, _ = await _click_many(emulator)
        assert followups == [f"answer {n}" for n in range(1, 6)]
        hits = emulator.rate_limit_hits
        assert hits and {hit.bucket for hit in hits} == {"webhook_send"}
        assert emulator.unimplemented_calls == []


async def test_interaction_routes_are_not_limited_by_default(emulator: LoopbackDiscord) -> None:
    followups, _ = await _click_many(emulator)
    assert followups == [f"answer {n}" for n in range(1, 6)]
    assert emulator.rate_limit_hits == []


async def test_discord_py_identifies_with_a_large_threshold_of_250(
    emulator: LoopbackDiscord,
) -> None:
    emulator.create_guild(member_count=10)
    async with running(emulator, make_bot()):
        [session] = emulator.gateway.sessions.values()
        assert session.large_threshold == 250

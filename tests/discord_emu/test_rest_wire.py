"""Wire details discord.py depends on, checked with a plain aiohttp client."""

from __future__ import annotations

import aiohttp

from bot.sandbox.discord import LoopbackDiscord
from bot.sandbox.discord.ratelimit import RateLimitRule
from bot.sandbox.discord.rest import UnimplementedCall


async def test_json_content_type_is_exact_and_unknown_routes_are_recorded(
    emulator: LoopbackDiscord,
) -> None:
    headers = {"Authorization": f"Bot {emulator.token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.get(emulator.api_url + "/users/@me") as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "application/json"
            assert (await response.json())["id"] == str(emulator.bot_user.id)
        async with http.get(emulator.api_url + "/gateway/bot") as response:
            assert (await response.json())["url"] == emulator.gateway_url
        async with http.post(emulator.api_url + "/guilds/1/bans/2") as response:
            assert response.status == 404
            assert (await response.json())["code"] == 0
    assert emulator.unimplemented_calls == [UnimplementedCall("POST", "/api/v10/guilds/1/bans/2")]
    emulator.unimplemented_calls.clear()  # recorded on purpose; the fixture asserts it is empty


async def test_rate_limited_edit_carries_discord_headers_and_body() -> None:
    rules = {"message_edit": RateLimitRule(limit=1, per=5.0)}
    async with LoopbackDiscord(rate_limits=rules) as emulator:
        guild = emulator.create_guild(member_count=5)
        channel_id = emulator.channel_named(guild.id, "general")
        url = f"{emulator.api_url}/channels/{channel_id}/messages"
        async with aiohttp.ClientSession(
            headers={"Authorization": f"Bot {emulator.token}"}
        ) as http:
            async with http.post(url, json={"content": "v0"}) as response:
                message_id = (await response.json())["id"]
            async with http.patch(f"{url}/{message_id}", json={"content": "v1"}) as response:
                assert response.status == 200
                assert response.headers["X-RateLimit-Remaining"] == "0"
                bucket = response.headers["X-RateLimit-Bucket"]
            async with http.patch(f"{url}/{message_id}", json={"content": "v2"}) as response:
                assert response.status == 429
                assert response.headers["Via"] == "1.1 google"
                assert response.headers["X-RateLimit-Bucket"] == bucket
                assert int(response.headers["Retry-After"]) >= 1
                body = await response.json()
        assert body["message"] == "You are being rate limited." and body["global"] is False
        assert 0 < body["retry_after"] <= 5
        [message] = emulator.channel_messages(channel_id)
        assert [version.content for version in message.versions] == ["v0", "v1"]
        assert len(emulator.rate_limit_hits) == 1


async def test_empty_and_oversized_messages_are_rejected(emulator: LoopbackDiscord) -> None:
    guild = emulator.create_guild(member_count=5)
    url = f"{emulator.api_url}/channels/{emulator.channel_named(guild.id, 'general')}/messages"
    async with aiohttp.ClientSession(headers={"Authorization": f"Bot {emulator.token}"}) as http:
        async with http.post(url, json={"content": ""}) as response:
            assert (response.status, (await response.json())["code"]) == (400, 50006)
        async with http.post(url, json={"content": "x" * 2001}) as response:
            assert (response.status, (await response.json())["code"]) == (400, 50035)
    assert emulator.message_stats.created == 0

"""The outage replayed side by side: all 80,000 updates in one request, then this bot's way.

The incident (README.md, shared/site-api.md): a role held by 80,000 members was deleted and the
community's bot sent every holder's update in one `bulk_patch`. The site grew from 400 MB to
1.5 GB and was OOM-killed, taking PostgreSQL down with it. Here the sandbox site runs the cost
model (bot/sandbox/site/cost.py: time and memory fitted to the site's measurements) with a
memory limit like the deployment's (docker-compose.yml: 1 GiB for the site). First the naive
request, sent by this scenario with a plain HTTP client: the site's accounted memory climbs to the
limit and the worker dies with the request unanswered and nothing written. Then the same role
deletion through the real bot: chunks of at most 1,000 users, the live message in the log channel.

Below the incident's 80,000 members the limit's headroom above the site's resting memory is
scaled with the guild (members / 80,000), so a small replay still shows the naive request dying
and the bot's bounded requests fitting.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp

from bot.sandbox.sandbox import BULK_PATCH, Sandbox, expect
from bot.sandbox.scenarios.registry import scenario
from bot.sandbox.site import DEFAULT_TOKEN
from bot.sandbox.site.cost import DEPLOYMENT_MEMORY_LIMIT_MIB, WORKER_RESTART_S, WORKER_RSS_MIB
from bot.sandbox.world import DEVELOPERS

INCIDENT_MEMBERS = 80_000
DEPLOYMENT_WORKERS = 2
DEPLOYMENT_HEADROOM_MIB = DEPLOYMENT_MEMORY_LIMIT_MIB - DEPLOYMENT_WORKERS * WORKER_RSS_MIB
"""The deployment's limit above its two workers at rest: 1,024 - 236 = 788 MiB."""
NAIVE_TIMEOUT_S = 15 * 60
"""As long as the measurement waited for the 80,000-user request before giving up."""
MEMORY_REPORT_EVERY_S = 4.0


def memory_limit_mib(members: int, workers: int) -> float:
    """The site's memory limit: docker-compose.yml's 1 GiB at the incident's size (the workers
    at rest plus 788 MiB), the headroom scaled down with a smaller guild."""
    share = min(1.0, members / INCIDENT_MEMBERS)
    return round(workers * WORKER_RSS_MIB + DEPLOYMENT_HEADROOM_MIB * share, 1)


def _naive_body(sandbox: Sandbox, role_id: int) -> list[dict[str, Any]]:
    """What the naive bot sent: every holder's full record without the role, in one list."""
    users = [user for user in sandbox.guild.expected_users() if role_id in user.roles]
    return [{**user.to_json(), "roles": sorted(user.roles - {role_id})} for user in users]


@scenario(
    "outage",
    "the incident side by side on a site that costs what the real one does, with a memory "
    "limit like the deployment's: 80,000 updates in one request kill the site's worker and "
    "write nothing; the bot's chunked role deletion finishes",
    default_members=INCIDENT_MEMBERS,
    site_cost="real",
    site_memory_limit_mib=memory_limit_mib,
    reads_site_counters=True,
)
async def outage(sandbox: Sandbox) -> None:
    role_id = sandbox.guild.role_id(DEVELOPERS)
    stats = await sandbox.site_stats()
    modelled = "site_workers" in stats
    limit = stats.get("site_memory_limit_mib")
    sandbox.say(
        "The incident: a role held by 80,000 members was deleted and the community's bot sent "
        "all 80,000 updates in one request. The site grew from 400 MB to 1.5 GB and was "
        "OOM-killed, taking PostgreSQL with it (measured on a copy: that request never finished "
        "in 15 minutes and PostgreSQL grew to 2 GiB; 1,000 full users cost 0.85 s, 4,000 cost "
        "5.3 s, 10,000 cost 16 s with JIT off)."
    )
    if modelled:
        scaled = "" if sandbox.members >= INCIDENT_MEMBERS else ", its headroom scaled to the guild"
        sandbox.say(
            f"This site: {stats['site_workers']} workers, {stats['site_memory_mib']:,.0f} MiB at "
            f"rest, memory limit {limit:,.0f} MiB (docker-compose.yml: 1 GiB{scaled}); every "
            "request waits its modelled time on a worker, as fitted to those measurements."
        )
    else:
        sandbox.say("This site has no cost model (--site-cost none): nothing can run out here.")

    naive = await _send_naive(sandbox, _naive_body(sandbox, role_id), stats)
    sandbox.facts["naive"] = naive
    naive["nothing_written"] = await _sample_still_holds(sandbox, role_id)
    if modelled and limit is not None:
        expect(naive["outcome"] != "answered", f"the naive request was answered: {naive}")
        expect(naive["oom_kills"] == 1, f"the site's worker was not OOM-killed once: {naive}")
        expect(naive["nothing_written"], "the dead request wrote users: it must write nothing")
        sandbox.say(
            f"The worker died {naive['site_s']:.1f} s into the request (modelled) at "
            f"{naive['reached_mib']:,.0f} MiB of its {limit:,.0f} MiB limit; the client got "
            f"{naive['outcome']}. Nothing was written: every holder still has {DEVELOPERS}. "
            f"gunicorn replaces the worker ({WORKER_RESTART_S:g} s modelled); a naive bot sends "
            "the same request again, and it dies again."
        )

    before = await sandbox.site_stats()
    sandbox.say(
        f"This bot's way: a moderator deletes {DEVELOPERS} on Discord; the bot strips it from its "
        f"{naive['items']:,} holders in chunked bulk_patch requests, then deletes the role."
    )
    started = time.monotonic()
    sandbox.discord.delete_role(sandbox.guild.id, role_id)
    summary = await sandbox.wait_for_summary("Role deletion", within=sandbox.run_timeout())
    after = await sandbox.site_stats()
    bot = _bot_facts(before, after, time.monotonic() - started)
    sandbox.facts["bot"] = bot
    expect(summary.startswith("✅"), f"the role deletion did not finish: {summary!r}")
    if modelled:
        expect(bot["oom_kills"] == 0, f"the bot's requests took the site past its limit: {bot}")
        sandbox.say(
            f"The bot's way: {_count(bot['bulk_patch_requests'], 'bulk_patch request')} for "
            f"{bot['bulk_patch_items']:,} users ({bot['requests']} requests with the page reads "
            f"and the DELETE), {bot['wall_s']:.1f} s, {bot['site_cpu_s']:.1f} s of modelled site "
            f"CPU, site memory at most {bot['peak_memory_mib']:,.0f} MiB of {limit:,.0f}. "
            "Measured on a copy of the real site with 2 workers, 80,000 users in 1,000-user "
            "`{id, roles}` requests: 24.7 s and 39.0 s of CPU (3 in flight), 249 MiB at most."
        )


async def _send_naive(
    sandbox: Sandbox, body: list[dict[str, Any]], stats: dict[str, Any]
) -> dict[str, Any]:
    """PATCH the whole body at once with a plain client, reporting the site's memory as it
    climbs; what became of the request."""
    assert sandbox.site is not None
    data = json.dumps(body).encode()
    sandbox.say(
        f"The naive way: PATCH bot/users/bulk_patch with all {len(body):,} holders in one "
        f"request ({_size(len(data))} of JSON), sent with a plain HTTP client."
    )
    started = time.monotonic()
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=NAIVE_TIMEOUT_S)
    ) as session:

        async def send() -> tuple[str, bool]:
            assert sandbox.site is not None
            try:
                async with session.patch(
                    f"{sandbox.site.url}/bot/users/bulk_patch",
                    data=data,
                    headers={
                        "Authorization": f"Token {DEFAULT_TOKEN}",
                        "Content-Type": "application/json",
                    },
                ) as response:
                    await response.read()
                    return f"HTTP {response.status}", response.status < 500
            except aiohttp.ClientError as error:
                return f"no answer: the connection was closed ({type(error).__name__})", False

        request = asyncio.create_task(send())
        shown = stats.get("site_memory_mib")
        while not request.done():
            # Narration only: the request's own end is what the loop waits for.
            await asyncio.wait([request], timeout=MEMORY_REPORT_EVERY_S)
            current = (await sandbox.site_stats()).get("site_memory_mib")
            if not request.done() and current is not None and current != shown:
                elapsed = time.monotonic() - started
                sandbox.say(f"  {elapsed:5.1f} s: site memory {current:,.0f} MiB")
                shown = current
        outcome, answered = await request
    after = await sandbox.site_stats()
    oom = after.get("site_last_oom") or {}
    return {
        "items": len(body),
        "body_bytes": len(data),
        "outcome": "answered" if answered else outcome,
        "wall_s": round(time.monotonic() - started, 1),
        "site_s": oom.get("after_s"),
        "reached_mib": oom.get("reached_mib"),
        "oom_kills": after.get("site_oom_kills", 0) - stats.get("site_oom_kills", 0),
    }


async def _sample_still_holds(sandbox: Sandbox, role_id: int) -> bool:
    """Whether the first, a middle and the last holder still hold the role on the site (the
    naive request was one UPDATE: all of it or none)."""
    holders = sorted(
        member.id for member in sandbox.guild.state.members.values() if role_id in member.roles
    )
    for user_id in {holders[0], holders[len(holders) // 2], holders[-1]}:
        user = await sandbox.client.get_user(user_id)
        if user is None or role_id not in user.roles:
            return False
    return True


def _bot_facts(before: dict[str, Any], after: dict[str, Any], wall_s: float) -> dict[str, Any]:
    def route(stats: dict[str, Any], key: str) -> int:
        return int(stats["routes"].get(BULK_PATCH, {}).get(key, 0))

    return {
        "requests": after["requests"] - before["requests"],
        "bulk_patch_requests": route(after, "requests") - route(before, "requests"),
        "bulk_patch_items": route(after, "items") - route(before, "items"),
        "wall_s": round(wall_s, 1),
        "site_cpu_s": round(after.get("site_cpu_s", 0.0) - before.get("site_cpu_s", 0.0), 1),
        "peak_memory_mib": after.get("site_peak_memory_since_kill_mib"),
        "oom_kills": after.get("site_oom_kills", 0) - before.get("site_oom_kills", 0),
    }


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'s' * (number != 1)}"


def _size(size: int) -> str:
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 2**10:.0f} KiB"

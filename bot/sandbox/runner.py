"""`python -m bot sandbox`: the real bot, a loopback Discord and a sandbox site, one scenario.

The bot runs as its own process (`python -m bot run`), configured against the loopback Discord
and the sandbox site exactly as an operator configures it against the real ones. The terminal
shows the log channel as moderators would see it; the last line is a JSON summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bot.sandbox.bot_process import BotProcess
from bot.sandbox.discord import LoopbackDiscord
from bot.sandbox.log_printer import LogPrinter
from bot.sandbox.sandbox import Sandbox
from bot.sandbox.scenarios import SCENARIOS, Scenario
from bot.sandbox.site import DEFAULT_TOKEN, SiteStore
from bot.sandbox.site.process import SiteProcess, start_site_process
from bot.sandbox.world import SandboxGuild, mismatches
from bot.site.client import SiteClient

DEFAULT_SCENARIO = "role-delete"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot sandbox",
        description="Run the real bot against a loopback Discord and a sandbox site.",
        epilog="scenarios: " + "; ".join(f"{s.name} ({s.summary})" for s in SCENARIOS.values()),
    )
    parser.add_argument("--members", type=int, help="guild size (default: the scenario's)")
    parser.add_argument("--scenario", default=DEFAULT_SCENARIO, choices=sorted(SCENARIOS))
    parser.add_argument("--seed", type=int, default=0, help="seed for the site's faults")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    scenario = SCENARIOS[args.scenario]
    members = args.members or scenario.default_members
    if members < 10:
        print("error: --members must be at least 10", file=sys.stderr)
        return 2
    summary = asyncio.run(run(scenario, members))
    print(json.dumps(summary))
    return 0 if summary["consistent"] else 1


async def run(scenario: Scenario, members: int) -> dict[str, Any]:
    started = time.monotonic()
    print(
        f"Sandbox: scenario {scenario.name!r} with {members:,} members — {scenario.summary}.\n"
        "The real bot runs as its own process against a loopback Discord and a sandbox copy of "
        "the site.\nLines after ┌─ are what moderators see in the log channel.",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="guild-sync-sandbox-") as tmp:
        workdir = Path(tmp)
        async with LoopbackDiscord() as discord:
            guild = SandboxGuild.build(discord, members)
            site = _start_site(guild, workdir / "site.sqlite3", seed=scenario.seed_site)
            client = SiteClient(site.url, DEFAULT_TOKEN)
            bot = BotProcess(
                guild.bot_environ(
                    site_url=site.url,
                    site_token=DEFAULT_TOKEN,
                    state_url=f"sqlite:///{workdir / 'state.sqlite3'}",
                ),
                workdir,
            )
            sandbox = Sandbox(discord, guild, client, bot, members)
            printer = LogPrinter(discord, guild.log_channel_id)
            printer.start()
            error = ""
            try:
                bot.start()
                sandbox.say("Bot started; waiting for it to load the guild and sync at start-up.")
                await sandbox.wait_for_summary("User sync", nth=1, within=sandbox.run_timeout())
                sandbox.say(f"Start-up sync done. Playing {scenario.name!r}.")
                await scenario.play(sandbox)
            except (TimeoutError, RuntimeError) as failure:
                error = str(failure)
                sandbox.say(f"FAILED: {error}\nLast lines of the bot's log:\n{bot.log_tail()}")
            finally:
                bot.stop()
                await printer.stop()
            found = await mismatches(client, guild)
            stats = await client.request("GET", "_sandbox/stats")
            await client.close()
            site.stop()
        for line in found[:20]:
            sandbox.say(f"mismatch: {line}")
        messages = discord.channel_messages(guild.log_channel_id)
        return {
            "scenario": scenario.name,
            "members": members,
            "consistent": not found and not error,
            "mismatches": len(found),
            "site_requests": stats["requests"],
            "max_items_per_request": stats["largest_request_items"],
            "site_peak_rss_mib": round(stats["peak_rss_bytes"] / 2**20, 1),
            "log_messages": len(messages),
            "progress_edits": sum(len(m.versions) - 1 for m in messages),
            "errors_reported": sum(1 for m in messages if m.versions[0].content.startswith("⚠️")),
            "bot_starts": bot.starts,
            "error": error or None,
            "wall_s": round(time.monotonic() - started, 1),
        }


def _start_site(guild: SandboxGuild, db: Path, *, seed: bool) -> SiteProcess:
    """The sandbox site as its own process, its database equal to the guild when `seed`."""
    store = SiteStore(str(db))
    if seed:
        store.seed(guild.expected_roles(), guild.expected_users())
    store.close()
    return start_site_process(db=str(db))

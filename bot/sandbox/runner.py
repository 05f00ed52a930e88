"""`python -m bot sandbox`: the real bot, a loopback Discord and a sandbox site, one scenario.

The bot runs as its own process (`python -m bot` with BOT_TOKEN set), configured against the
loopback Discord and the sandbox site as an operator configures it against the real ones. The
terminal shows the log channel as moderators would see it; the last line is a JSON summary.

The sandbox site runs the scenario's cost model (`--site-cost real|none`, `--site-workers N`;
bot/sandbox/site/cost.py): "real" makes each request wait the real site's modelled time on one
of N workers, "none" answers at once.

With `--site-url` the site is the operator's own (a staging copy) instead of the sandbox site:
the guild is written into it through its API first (see `external_site`), so a rehearsal shows
what the scenario costs that site. That guild is the community variant (`SandboxGuild.
community`: members hold a community's spread of roles), and only the scenarios declared
`rehearsable` (bot/sandbox/scenarios/registry.py) are played against such a site.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bot.sandbox.bot_process import BotProcess
from bot.sandbox.discord import LoopbackDiscord
from bot.sandbox.external_site import (
    ExternalSite,
    RehearsalClient,
    SiteRefused,
    prepare,
    site_stats,
)
from bot.sandbox.log_printer import LogPrinter
from bot.sandbox.sandbox import RETRY_LINE, Sandbox
from bot.sandbox.scenarios import SCENARIOS, Scenario
from bot.sandbox.scenarios.registry import rehearsable_names
from bot.sandbox.site import DEFAULT_TOKEN, SiteStore
from bot.sandbox.site.cost import COST_MODELS, DEFAULT_WORKERS, CostConfig
from bot.sandbox.site.faults import FaultConfig
from bot.sandbox.site.process import SiteProcess, start_site_process
from bot.sandbox.world import SandboxGuild, mismatches
from guild_sync.site.client import SiteClient

DEFAULT_SCENARIO = "role-delete"
TOKEN_ENV = "API_KEYS_SITE_API"
DRY_RUN_COMMAND = "!sync users --dry-run"
SECRET_SETTINGS = ("BOT_TOKEN", "API_KEYS_SITE_API", "BOT_SENTRY_DSN")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot sandbox",
        description="Run the real bot against a loopback Discord and a sandbox site.",
        epilog="scenarios: " + "; ".join(f"{s.name} ({s.summary})" for s in SCENARIOS.values()),
    )
    parser.add_argument("--members", type=int, help="guild size (default: the scenario's)")
    parser.add_argument("--scenario", default=DEFAULT_SCENARIO, choices=sorted(SCENARIOS))
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed for the site's faults and a rehearsal guild's roles",
    )
    parser.add_argument(
        "--site-cost",
        choices=COST_MODELS,
        help="the sandbox site's cost model: real (the real site's modelled time and memory per "
        "request) or none (answers at once); default: the scenario's",
    )
    parser.add_argument(
        "--site-workers",
        type=int,
        default=DEFAULT_WORKERS,
        metavar="N",
        help="workers of the sandbox site's cost model, one request each "
        f"(default {DEFAULT_WORKERS}, as docker-compose.yml's site)",
    )
    rehearsal = parser.add_argument_group(
        "rehearsal against your own site (Discord stays simulated)"
    )
    rehearsal.add_argument("--site-url", help="the site's API base, e.g. http://staging:8000/api")
    rehearsal.add_argument(
        "--site-token",
        help=f"the site's API token (default: ${TOKEN_ENV}, which keeps it out of ps)",
    )
    rehearsal.add_argument(
        "--allow-existing",
        action="store_true",
        help="write beside the users and roles the site already holds (they are left as they are)",
    )
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    scenario = SCENARIOS[args.scenario]
    members = args.members or scenario.default_members
    if members < 10:
        print("error: --members must be at least 10", file=sys.stderr)
        return 2
    if args.site_workers < 1:
        print("error: --site-workers must be at least 1", file=sys.stderr)
        return 2
    try:
        external = _external_site(args, scenario)
        summary = asyncio.run(
            run(
                scenario,
                members,
                external,
                seed=args.seed,
                site_cost=args.site_cost,
                site_workers=args.site_workers,
            )
        )
    except SiteRefused as refusal:
        print(f"error: {refusal}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0 if summary["consistent"] else 1


async def run(
    scenario: Scenario,
    members: int,
    external: ExternalSite | None = None,
    *,
    seed: int = 0,
    settings: dict[str, str] | None = None,
    site_cost: str | None = None,
    site_workers: int = DEFAULT_WORKERS,
) -> dict[str, Any]:
    """Play `scenario`; `settings` override the bot's (tests use small chunks and pages);
    `site_cost` None takes the scenario's cost model for the sandbox site."""
    started = time.monotonic()
    cost = _cost_config(scenario, members, site_cost, site_workers)
    if external:
        where = f"your site at {external.url}"
    elif cost.enabled:
        where = (
            f"a sandbox copy of the site that costs what the real one does "
            f"({cost.workers} worker{'s' * (cost.workers > 1)}, modelled time per request)"
        )
    else:
        where = "a sandbox copy of the site (no cost model: it answers at once)"
    print(
        f"Sandbox: scenario {scenario.name!r} with {members:,} members — {scenario.summary}.\n"
        f"The real bot runs as its own process against a loopback Discord and {where}.\n"
        "Lines after ┌─ are what moderators see in the log channel.",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="guild-sync-sandbox-") as tmp:
        workdir = Path(tmp)
        async with LoopbackDiscord() as discord:
            # An operator's site is measured on data shaped like the real guild's; the sandbox
            # site's cost model charges a role list by whether it is empty, not by its length,
            # and every list holds @everyone, so the demo keeps the tests' guild.
            guild = (
                SandboxGuild.community(discord, members, seed=seed)
                if external
                else SandboxGuild.build(discord, members)
            )
            site: SiteProcess | None = None
            setup_started = time.monotonic()
            if external is None:
                site = _start_site(guild, workdir / "site.sqlite3", scenario, seed, cost)
                client: SiteClient = SiteClient(site.url, DEFAULT_TOKEN)
                site_url, site_token = site.url, DEFAULT_TOKEN
            else:
                client = RehearsalClient(external)
                site_url, site_token = external.url, external.token
                try:
                    await prepare(client, external, guild, seed=scenario.seed_site)
                except BaseException:
                    await client.close()
                    raise
            seed_s = time.monotonic() - setup_started
            # Beside existing records a start-up sync would mark their users as left.
            startup_sync = not (isinstance(client, RehearsalClient) and client.existing)
            environ = guild.bot_environ(
                site_url=site_url,
                site_token=site_token,
                state_url=f"sqlite:///{workdir / 'state.sqlite3'}",
            )
            environ["SYNC_STARTUP"] = str(startup_sync).lower()
            environ.update(scenario.settings)
            environ.update(settings or {})
            bot = BotProcess(environ, workdir)
            sandbox = Sandbox(
                discord,
                guild,
                client,
                bot,
                members,
                seed=seed,
                site=site,
                site_db=workdir / "site.sqlite3" if site else None,
                printer=LogPrinter(discord, guild.log_channel_id),
            )
            printer = sandbox.printer
            assert printer is not None
            printer.start()
            error = ""
            stats_before = await site_stats(client)
            scenario_s = None
            try:
                bot.start()
                if startup_sync:
                    sandbox.say(
                        "Bot started; waiting for it to load the guild and sync at start-up."
                    )
                    await sandbox.wait_for_summary("User sync", nth=1, within=sandbox.run_timeout())
                    sandbox.say(f"Start-up sync done. Playing {scenario.name!r}.")
                else:
                    sandbox.say(
                        f"Bot started without its start-up sync; a moderator sends "
                        f"`{DRY_RUN_COMMAND}` once it is ready."
                    )
                    await _dry_run_when_ready(sandbox)
                    sandbox.say(f"Dry run done, nothing written. Playing {scenario.name!r}.")
                scenario_started = time.monotonic()
                await scenario.play(sandbox)
                scenario_s = round(time.monotonic() - scenario_started, 1)
            except (TimeoutError, RuntimeError) as failure:
                error = str(failure) or repr(failure)
                sandbox.say(f"FAILED: {error}\nLast lines of the bot's log:\n{bot.log_tail()}")
            finally:
                bot.stop()
                await printer.stop()
            stats = await site_stats(client)
            found = await mismatches(client, guild, sandbox.isolated)
            if isinstance(client, RehearsalClient):
                found += client.existing_changes()
            await client.close()
            if sandbox.site is not None:
                sandbox.site.stop()
            leaked = _leaked_secrets(bot, discord, environ)
        for line in found[:20]:
            sandbox.say(f"mismatch: {line}")
        messages = discord.channel_messages(guild.log_channel_id)
        unlisted = sorted(sandbox.isolated - sandbox.listed_user_ids())
        return {
            "scenario": scenario.name,
            "members": members,
            "site": "external" if external else "sandbox",
            "consistent": not found and not error and not unlisted and not leaked,
            "mismatches": len(found),
            "isolated": sorted(sandbox.isolated),
            "isolated_unlisted": unlisted,
            "secrets_leaked": leaked,
            "site_requests": _requests_between(stats_before, stats),
            "max_items_per_request": stats["largest_request_items"] if stats else None,
            "empty_requests": stats["empty_requests"] if stats else None,
            "user_writes_peak_in_flight": stats["user_writes_peak_in_flight"] if stats else None,
            "site_peak_rss_mib": round(stats["peak_rss_bytes"] / 2**20, 1) if stats else None,
            "site_cost": None if external else cost.model,
            "site_workers": cost.workers if cost.enabled and not external else None,
            "site_cpu_s": _cpu_between(stats_before, stats),
            "site_peak_memory_mib": stats.get("site_peak_memory_mib") if stats else None,
            "site_oom_kills": stats.get("site_oom_kills") if stats else None,
            "log_messages": len(messages),
            "progress_edits": sum(len(m.versions) - 1 for m in messages),
            "errors_reported": len(sandbox.error_texts()),
            "retries_logged": sandbox.bot_log_count(RETRY_LINE),
            "bot_starts": bot.starts,
            "error": error or None,
            "seed_s": round(seed_s, 1),
            "scenario_s": scenario_s,
            "wall_s": round(time.monotonic() - started, 1),
            **sandbox.facts,
        }


def _leaked_secrets(
    bot: BotProcess, discord: LoopbackDiscord, environ: dict[str, str]
) -> list[str]:
    """The settings whose secret value shows in the bot's log or in any version of any message
    the bot wrote on Discord (names only, never the values)."""
    secrets = {name: environ.get(name, "") for name in SECRET_SETTINGS}
    log_text = bot.log_path.read_text(errors="replace") if bot.log_path.exists() else ""
    bot_id = discord.bot_user.id
    texts = [log_text]
    for guild in discord.world.guilds.values():
        for channel in guild.messages.values():
            texts.extend(
                version.content
                for message in channel.values()
                if message.author.id == bot_id
                for version in message.versions
            )
    return sorted(
        name for name, value in secrets.items() if value and any(value in t for t in texts)
    )


def _requests_between(before: dict[str, Any] | None, after: dict[str, Any] | None) -> int | None:
    """The site's requests from the bot's start to its stop (the seeding and the final check
    are the runner's, not the bot's)."""
    if before is None or after is None:
        return None
    return int(after["requests"]) - int(before["requests"])


def _cpu_between(before: dict[str, Any] | None, after: dict[str, Any] | None) -> float | None:
    """The site's modelled CPU seconds from the bot's start to its stop (cost.py); None without
    a cost model or against an operator's site."""
    if before is None or after is None or "site_workers" not in after:
        return None
    return round(float(after["site_cpu_s"]) - float(before["site_cpu_s"]), 1)


def _cost_config(
    scenario: Scenario, members: int, site_cost: str | None, workers: int
) -> CostConfig:
    model = site_cost or scenario.site_cost
    limit = scenario.site_memory_limit_mib
    return CostConfig(
        model=model,
        workers=workers,
        memory_limit_mib=limit(members, workers) if limit and model == "real" else None,
    )


async def _dry_run_when_ready(sandbox: Sandbox) -> None:
    """Without a start-up sync nothing shows when the bot has loaded the guild; a moderator's
    dry run does, and shows in the log channel what a real sync would change on this site."""
    channel = sandbox.guild.commands_channel_id
    deadline = time.monotonic() + sandbox.run_timeout()
    while True:
        command = sandbox.discord.post_message(channel, sandbox.guild.moderator_id, DRY_RUN_COMMAND)

        def reply(command_id: int = command.id) -> str | None:
            for message in sandbox.discord.channel_messages(channel):
                if str((message.message_reference or {}).get("message_id")) == str(command_id):
                    return message.content
            return None

        with contextlib.suppress(TimeoutError):  # not connected yet: it reached no one
            await sandbox.discord.wait_until(lambda: reply() is not None, within=2.0)
        answer = reply()
        if answer is not None and not answer.startswith("Not ready yet"):
            break
        if not sandbox.bot.alive:
            raise RuntimeError("the bot process exited before it was ready")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the bot was not ready within {sandbox.run_timeout():.0f} s")
        await asyncio.sleep(0.5)
    await sandbox.wait_for_summary("User sync", nth=1, within=sandbox.run_timeout())


def _external_site(args: argparse.Namespace, scenario: Scenario) -> ExternalSite | None:
    if args.site_url is None:
        if args.site_token or args.allow_existing:
            raise SiteRefused("--site-token and --allow-existing need --site-url")
        return None
    token = args.site_token or os.environ.get("API_KEYS_SITE_API", "")
    if not token:
        raise SiteRefused(f"--site-url needs the site's token: --site-token or ${TOKEN_ENV}")
    if not scenario.rehearsable:
        raise SiteRefused(
            f"scenario {scenario.name!r} needs the sandbox site (it breaks or inspects the site "
            "through the sandbox's private controls); rehearse one of "
            f"{', '.join(rehearsable_names())} against your site"
        )
    if args.allow_existing and not scenario.writes_beside_existing:
        how = (
            "runs whole user and role syncs"
            if scenario.seed_site
            else "fills the site with the bot's start-up sync"
        )
        raise SiteRefused(
            f"scenario {scenario.name!r} {how}, which would mark the site's existing users as "
            "left and delete its roles; use an empty site"
        )
    return ExternalSite(args.site_url.rstrip("/"), token, args.allow_existing)


def _start_site(
    guild: SandboxGuild, db: Path, scenario: Scenario, seed: int, cost: CostConfig
) -> SiteProcess:
    """The sandbox site as its own process, its database equal to the guild when the scenario
    seeds it (the first `stale_users` members under an outdated name), or holding the scenario's
    own `site_users`."""
    store = SiteStore(str(db))
    if scenario.seed_site:
        users = scenario.site_users(guild) if scenario.site_users else guild.expected_users()
        for index, user in enumerate(users[: scenario.stale_users]):
            users[index] = replace(user, name=f"stale{index}")
        store.seed(guild.expected_roles(), users)
    store.close()
    faults = FaultConfig(reject_writes=scenario.reject_writes, seed=seed, **scenario.site_faults)
    return start_site_process(db=str(db), faults=faults, cost=cost)

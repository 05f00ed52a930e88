"""The fault matrix: each sandbox scenario with the real bot process, at a small size.

Each test plays the scenario exactly as `python -m bot sandbox --scenario NAME` does and checks
its summary line: the site ends equal to the guild (bar the records it cannot store, which
must be listed), no secret shows in the bot's log or messages, and the scenario's own facts.
"""

import json

import pytest

from bot.sandbox.runner import run
from bot.sandbox.scenarios import SCENARIOS

pytestmark = pytest.mark.timeout(150)

FAST = {"SYNC_PROGRESS_INTERVAL": "1"}
"""Live messages edited every second, so each run's summary shows without the 5 s pace."""
SMALL = {"SYNC_CHUNK_SIZE": "100", "SYNC_PAGE_SIZE": "250"}
"""Small chunks and pages, so a small guild still takes many requests."""


async def play(name: str, members: int, *, seed: int = 0, settings=None) -> dict:
    settings = FAST | SCENARIOS[name].settings | (settings or {})
    summary = await run(SCENARIOS[name], members, seed=seed, settings=settings)
    print(json.dumps(summary))
    assert summary["error"] is None, summary["error"]
    assert summary["secrets_leaked"] == []
    assert summary["mismatches"] == 0
    assert summary["isolated_unlisted"] == []
    assert summary["consistent"], summary
    # What the site itself counted (since its last start), not the bot's own figures.
    assert summary["max_items_per_request"] <= int(settings.get("SYNC_CHUNK_SIZE", "1000"))
    assert summary["empty_requests"] == 0
    assert summary["user_writes_peak_in_flight"] <= int(settings.get("SYNC_MAX_IN_FLIGHT", "2"))
    return summary


async def test_flaky_site_recovers_every_chunk_without_an_error_message():
    summary = await play("flaky-site", 1_500, seed=1, settings=SMALL)
    assert sum(summary["faults_injected"].values()) >= 3
    assert summary["retries_logged"] >= 3
    assert summary["errors_reported"] == 0


async def test_site_restart_is_ridden_out_and_named_once():
    summary = await play("site-restart", 2_000, settings=SMALL)
    assert 0 < summary["items_before_outage"] < 2_000 - 2
    assert summary["outage_notes"] == 1
    assert summary["errors_reported"] == 0
    assert summary["retries_logged"] >= 1


async def test_bot_killed_mid_role_deletion_resumes_after_restart():
    summary = await play("restart", 2_000, settings=SMALL)
    assert 0 < summary["items_before_kill"] < 2_000 - 2
    assert summary["bot_starts"] == 2


async def test_gateway_drop_loses_no_member_event():
    summary = await play("gateway-drop", 2_000, settings=SMALL)
    assert summary["gateway_resumes"] >= 1
    assert summary["replayed_on_resume"] > 300


async def test_bad_site_pages_fail_the_run_clearly_and_write_nothing_unread():
    summary = await play("bad-site", 300)
    assert set(summary["failed_runs"]) == {
        "html_500",
        "invalid_json",
        "wrong_types",
        "missing_fields",
    }
    assert summary["errors_reported"] >= 4


async def test_bad_records_are_isolated_and_listed_and_ping_nobody():
    summary = await play("bad-records", 300)
    assert len(summary["isolated"]) == 2
    assert summary["unsafe_messages"] == 0


async def test_hostile_users_are_refused_and_a_burst_starts_one_run():
    summary = await play("hostile-users", 300)
    assert summary["burst_runs_started"] == 1
    assert summary["tracebacks"] == 0


async def test_event_storm_is_coalesced():
    summary = await play("event-storm", 3_000)
    assert 3 <= summary["storm_write_requests"] <= (50_000 + 3_000) // 1000 + 20


async def test_upstream_syncers_records_need_no_write():
    summary = await play("upstream-data", 300)
    assert summary["user_writes"] == 0
    assert summary["role_writes"] == 0
    assert summary["upstream_users_seeded"] > 300


async def test_partial_cache_asks_first_and_a_moderators_run_marks_no_hidden_member_left():
    summary = await play("partial-cache", 300)
    # Counted from the site's own records over HTTP, not from the bot's report.
    assert summary["hidden_members"] == 45
    assert summary["hidden_marked_left"] == 0
    assert summary["bot_starts"] == 4


async def test_a_session_lost_mid_run_is_reconciled_on_the_new_cache():
    summary = await play("reidentify", 2_000, settings=SMALL)
    assert 0 < summary["items_before_reidentify"] < 2_000 - 2
    assert summary["invalid_sessions"] >= 1
    assert summary["identifies_again"] >= 1
    assert summary["gateway_resumes"] == 0
    assert summary["replayed_on_resume"] == 0, "events were replayed: the session was resumed"
    assert summary["reconciled"]


async def test_outage_replay_kills_the_naive_request_and_the_bot_finishes():
    summary = await play("outage", 300)
    naive, bot = summary["naive"], summary["bot"]
    assert naive["outcome"].startswith("no answer"), naive
    assert (naive["oom_kills"], naive["nothing_written"]) == (1, True)
    assert naive["reached_mib"] == summary["site_peak_memory_mib"]
    assert (bot["oom_kills"], bot["bulk_patch_items"]) == (0, 298)
    assert bot["peak_memory_mib"] < naive["reached_mib"]
    assert summary["site_cost"] == "real" and summary["site_cpu_s"] > 0


async def test_discord_rest_faults_still_land_the_summary():
    summary = await play("discord-rest-faults", 2_000, settings=SMALL)
    assert 0 < summary["items_before_faults"] < 2_000 - 2
    served = summary["faults_served"]
    assert served["server_error_502"] == 1 and served["global_429"] == 1
    # discord.py's five tries of one edit: the 502, the global 429, three 30046s; then none.
    assert served["old_message_edit_30046"] == 3
    assert summary["summary_posted_anew"]


async def test_a_session_ended_by_4009_mid_run_and_while_loading_is_replaced_not_resumed():
    summary = await play("session-lost", 2_000, settings=SMALL)
    assert 0 < summary["items_before_close"] < 2_000 - 2
    mid_run = summary["mid_run"]
    assert mid_run["sessions_ended"] >= 1 and mid_run["invalid_sessions"] >= 1
    assert (mid_run["resumes"], mid_run["replayed"]) == (0, 0)
    loading = summary["while_loading"]
    assert 0 < loading["chunks_sent_before_close"] < loading["chunks_of_lost_request"]
    assert loading["invalid_sessions"] >= 1 and loading["resumes"] == 0
    assert summary["bot_starts"] == 2


async def test_quick_restarts_meet_the_member_request_limit_and_still_sync_every_member():
    summary = await play("chunk-rate-limit", 2_000, settings=SMALL)
    # Counted by the emulator: both quick starts refused, one retry answered, nothing more.
    assert summary["rate_limited_requests"] == 2
    assert summary["member_requests"] == 3
    assert all(0 < retry <= 30 for retry in summary["retry_after_s"])
    assert "rate limited" in summary["told"].lower()
    assert summary["bot_starts"] == 3


async def test_slow_chunks_with_joins_and_leaves_between_them_end_consistent():
    summary = await play("slow-chunks", 2_000, settings=SMALL)
    assert summary["chunk_count"] == 2
    assert summary["events_between_chunks"] >= 30 + 30 + 5
    assert summary["chunks_sent_when_discord_py_gave_up"] == 1  # READY on a partial list
    assert summary["member_requests"] == 1


async def test_a_guild_outage_mid_run_holds_the_writes_until_it_is_back():
    summary = await play("guild-outage", 2_000, settings=SMALL)
    assert 0 < summary["items_before_outage"] < 2_000 - 2
    assert summary["guild_deletes"] == 1
    assert summary["written_during_outage"] == 0
    assert summary["written_after_outage"] > 0
    assert summary["paused_runs_told"]

"""`benchmarks/sync_bench.py --site-url`: the benchmark against a site in another process."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bot.sandbox.site.process import SiteProcess
from tests.rehearsal.support import PROJECT_ROOT, TOKEN, last_json, run_command

BENCH = str(PROJECT_ROOT / "benchmarks" / "sync_bench.py")
MEMBERS = 3000


def bench(site: SiteProcess, tmp_path: Path, *extra: str) -> tuple[int, str, str]:
    args = [BENCH, "--scenario", "role-delete", "--members", str(MEMBERS), "--site-url", site.url]
    done = run_command([*args, "--site-token", TOKEN, *extra], tmp_path, timeout=60)
    return done.returncode, done.stdout, done.stderr


def test_site_pid_samples_the_site_memory_and_without_it_memory_is_null(
    start_site: Callable[[], SiteProcess], tmp_path: Path
) -> None:
    sampled_site, unsampled_site = start_site(), start_site()

    status, out, err = bench(sampled_site, tmp_path, "--site-pid", str(sampled_site.pid))
    sampled = last_json(out)
    status_without, out_without, err_without = bench(unsampled_site, tmp_path)
    unsampled = last_json(out_without)

    assert status == 0 and status_without == 0, err + err_without
    assert sampled["mismatches"] == 0 and sampled["site"] == "external"
    assert sampled["written"] == MEMBERS and sampled["max_items_per_request"] <= 1000
    assert 10 < sampled["site_rss_start_mib"] <= sampled["site_peak_rss_mib"] < 1000
    assert unsampled["mismatches"] == 0
    assert unsampled["site_rss_start_mib"] is None and unsampled["site_peak_rss_mib"] is None


def test_the_benchmark_refuses_a_site_it_already_seeded(site: SiteProcess, tmp_path: Path) -> None:
    first, _, _ = bench(site, tmp_path)
    second, out, err = bench(site, tmp_path)

    assert first == 0
    assert second == 2 and "{" not in out
    assert err.startswith("error: the site at ") and "use an empty site" in err
    assert len(err.strip().splitlines()) == 1

"""`--site-cost` and `--site-workers`: which cost model each scenario's sandbox site runs."""

import pytest

from bot.sandbox.runner import _cost_config, build_parser
from bot.sandbox.scenarios import SCENARIOS
from bot.sandbox.scenarios.outage import memory_limit_mib


def test_the_demo_and_the_moderators_view_run_the_real_cost_and_the_fault_matrix_none():
    for name in ("role-delete", "mass-join", "member-updates", "outage"):
        assert _cost_config(SCENARIOS[name], 1_000, None, 2).model == "real", name
    for name in ("flaky-site", "site-restart", "restart", "bad-site", "event-storm"):
        assert _cost_config(SCENARIOS[name], 1_000, None, 2).model == "none", name


def test_the_flags_override_the_scenarios_cost_model():
    args = build_parser().parse_args(["--site-cost", "none", "--site-workers", "1"])
    config = _cost_config(SCENARIOS["role-delete"], 80_000, args.site_cost, args.site_workers)
    assert (config.model, config.workers) == ("none", 1)
    config = _cost_config(SCENARIOS["flaky-site"], 1_000, "real", 3)
    assert (config.model, config.workers, config.memory_limit_mib) == ("real", 3, None)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--site-cost", "cheap"])


def test_the_outage_runs_with_the_deployments_memory_limit_scaled_to_the_guild():
    assert memory_limit_mib(80_000, 2) == 1024  # docker-compose.yml: 1G
    assert memory_limit_mib(160_000, 2) == 1024
    assert memory_limit_mib(8_000, 2) == pytest.approx(236 + 78.8)
    assert _cost_config(SCENARIOS["outage"], 80_000, None, 2).memory_limit_mib == 1024
    assert _cost_config(SCENARIOS["outage"], 80_000, "none", 2).memory_limit_mib is None

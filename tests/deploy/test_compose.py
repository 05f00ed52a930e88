"""docker-compose.yml: the four services, their health checks, start order, limits and wiring."""

from __future__ import annotations

from graphlib import TopologicalSorter
from urllib.parse import urlsplit

import pytest
import yaml

from guild_sync.config import FIELDS, load_settings
from tests.deploy.deploy_files import ROOT, byte_size, interpolate

MiB = 1024**2
GiB = 1024**3

# Measured (site-api.md and the outage report): the site runs at ~400 MB and reached 1.5 GB in
# the outage; the bot's sync is bounded at 64 MiB.
SITE_NORMAL_BYTES = 400 * 1000**2
SITE_OUTAGE_BYTES = 1500 * 1000**2
BOT_SYNC_BYTES = 64 * MiB


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def memory_limit(service: dict) -> int | None:
    """The service's memory cap, from deploy.resources.limits or mem_limit (equal if both)."""
    deploy = service.get("deploy", {}).get("resources", {}).get("limits", {}).get("memory")
    legacy = service.get("mem_limit")
    if deploy is not None and legacy is not None:
        assert byte_size(deploy) == byte_size(legacy), "mem_limit and deploy limit disagree"
    chosen = deploy if deploy is not None else legacy
    return None if chosen is None else byte_size(chosen)


def cpu_limit(service: dict) -> float | None:
    chosen = service.get("deploy", {}).get("resources", {}).get("limits", {}).get("cpus")
    chosen = service.get("cpus") if chosen is None else chosen
    return None if chosen is None else float(chosen)


def healthy_dependencies(service: dict) -> dict[str, str]:
    depends = service.get("depends_on", {})
    if isinstance(depends, list):  # the short form waits for nothing but the container start
        return dict.fromkeys(depends, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in depends.items()}


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def test_the_four_services_and_their_images(services):
    assert {"bot", "site", "postgres", "redis"} <= set(services)
    assert services["site"]["image"] == "ghcr.io/python-discord/site:latest"
    assert services["postgres"]["image"].split(":")[1].startswith("15")
    assert services["redis"]["image"].split(":")[0] == "redis"


def test_the_bot_is_built_from_this_repository(services):
    build = services["bot"]["build"]
    context = build if isinstance(build, str) else build["context"]
    dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
    assert context in (".", "./")
    assert (ROOT / dockerfile).is_file()


def test_the_site_runs_the_upstream_server_entry_point(services):
    command = services["site"]["command"]
    assert command[:3] == ["python", "manage.py", "run"]
    assert "--debug" not in command  # Django's development server


@pytest.mark.parametrize(
    ("name", "probe"),
    [("site", "/api/healthcheck"), ("postgres", "pg_isready"), ("redis", "redis-cli")],
)
def test_health_checks(services, name, probe):
    check = services[name]["healthcheck"]
    test = check["test"]
    assert test[0] in ("CMD", "CMD-SHELL")
    assert any(probe in part for part in test[1:])
    assert check.get("disable") is not True
    for key in ("interval", "timeout", "retries"):
        assert key in check, f"{name} health check without {key}"


def test_redis_health_check_pings(services):
    assert services["redis"]["healthcheck"]["test"][1:] == ["redis-cli", "ping"]


def test_start_order_waits_for_health(services):
    assert healthy_dependencies(services["bot"]) == {
        "site": "service_healthy",
        "redis": "service_healthy",
    }
    assert healthy_dependencies(services["site"]) == {"postgres": "service_healthy"}

    graph = {name: set(healthy_dependencies(spec)) for name, spec in services.items()}
    order = list(TopologicalSorter(graph).static_order())  # raises on a cycle
    assert order.index("postgres") < order.index("site") < order.index("bot")
    assert order.index("redis") < order.index("bot")


def test_every_awaited_service_has_a_health_check(services):
    """Waiting on `service_healthy` for a service without a check would never start the bot."""
    for name, spec in services.items():
        for dependency, condition in healthy_dependencies(spec).items():
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits on {dependency}"


def test_site_memory_limit_is_above_normal_and_below_the_outage(services):
    limit = memory_limit(services["site"])
    assert limit is not None, "the site needs a memory limit (outage follow-up)"
    assert limit >= 2 * SITE_NORMAL_BYTES, "too close to the site's normal use"
    assert limit < SITE_OUTAGE_BYTES, "the outage's 1.5 GB would still fit"


def test_bot_memory_limit_leaves_room_for_the_bounded_sync(services):
    limit = memory_limit(services["bot"])
    assert limit is not None
    assert 2 * BOT_SYNC_BYTES <= limit <= 1 * GiB


@pytest.mark.parametrize("name", ["site", "bot"])
def test_cpu_limits(services, name):
    cpus = cpu_limit(services[name])
    assert cpus is not None and 0.25 <= cpus <= 2


def test_postgres_is_not_the_one_the_limit_kills(services):
    """The limit belongs to the process that spikes; a capped PostgreSQL is the outage again."""
    assert memory_limit(services["postgres"]) is None


def test_the_bot_reads_env_and_is_given_the_site_and_the_journal(services):
    bot = services["bot"]
    env_file = bot["env_file"]
    assert ".env" in ([env_file] if isinstance(env_file, str) else env_file)
    env = environment(bot)
    assert env["URLS_SITE_API"] == "http://site:8000/api"
    assert env["SYNC_STATE_URL"] == "redis://redis:6379/0"
    for value in (env["URLS_SITE_API"], env["SYNC_STATE_URL"]):
        assert urlsplit(value).hostname in services


def test_the_site_health_check_probes_the_api_the_bot_uses(services):
    api = urlsplit(environment(services["bot"])["URLS_SITE_API"])
    probe = next(part for part in services["site"]["healthcheck"]["test"] if "http" in part)
    assert f":{api.port}{api.path}/healthcheck" in probe


def test_bot_environment_only_sets_valid_settings(services):
    names = {field.env for field in FIELDS}
    env = environment(services["bot"])
    for name in env:
        assert name in names, f"{name} is not a setting"
    load_settings(env, env_file=None)  # raises SettingsError on a value start-up would refuse


def test_the_site_is_wired_to_postgres_without_literal_secrets(services):
    env = environment(services["site"])
    filled = {"POSTGRES_PASSWORD": "pw", "SITE_SECRET_KEY": "key"}
    database = urlsplit(interpolate(env["DATABASE_URL"], filled))
    assert database.scheme.startswith("postgres")
    assert database.hostname == "postgres"
    assert database.path.lstrip("/") == services["postgres"]["environment"]["POSTGRES_DB"]
    assert database.password == "pw"
    for value in (env["SECRET_KEY"], services["postgres"]["environment"]["POSTGRES_PASSWORD"]):
        assert value.startswith("${") and ":?" in value, "secrets come from .env and are required"
    assert "STATIC_ROOT" in env
    assert "site" in env["ALLOWED_HOSTS"].split(",")


def test_the_bot_restarts_only_on_failure(services):
    """Never `always`: a bot stopped by an operator or by a bad setting must stay stopped."""
    assert services["bot"]["restart"].split(":")[0] == "on-failure"


def test_the_bot_does_not_override_the_image_user_with_root(services):
    assert str(services["bot"].get("user", "10001")).split(":")[0] not in ("root", "0")

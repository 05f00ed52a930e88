""".env.example lists exactly what the code reads, each with its help text and a safe default.

"What the code reads" is every name in `guild_sync.config.FIELDS` plus every environment variable
read directly anywhere under guild_sync/ or bot/ (found by parsing the source, see env_reads.py),
plus the variables docker-compose.yml interpolates (they come from the same `.env` file).
"""

from __future__ import annotations

from functools import cache

import pytest
from dotenv import dotenv_values

from guild_sync.config import FIELDS, UPSTREAM_DEV_SITE_KEY, load_settings
from tests.deploy.deploy_files import ROOT, compose_variables, env_file_entries
from tests.deploy.env_reads import reads_in_package

ENV_EXAMPLE = ROOT / ".env.example"
COMPOSE_FILE = ROOT / "docker-compose.yml"

# Variables read directly under guild_sync/ or bot/ that are internal to the sandbox (set by the
# sandbox for its own child processes, never by an operator), each with the reason. Keep it empty if
# possible: anything an operator can set belongs in guild_sync.config.FIELDS.
SANDBOX_INTERNAL: dict[str, str] = {}


def example_entries():
    return env_file_entries(ENV_EXAMPLE.read_text(encoding="utf-8"))


@cache
def direct_reads():
    return tuple(
        read for package in ("guild_sync", "bot") for read in reads_in_package(ROOT / package)
    )


def test_every_direct_read_names_a_literal_variable():
    """A computed key (os.environ[name]) cannot be checked against .env.example."""
    computed = [read.where() for read in direct_reads() if read.name is None]
    assert computed == [], f"environment reads with a computed name: {computed}"


def test_env_example_lists_exactly_what_the_code_and_compose_read():
    fields = {field.env for field in FIELDS}
    direct = {read.name for read in direct_reads() if read.name} - set(SANDBOX_INTERNAL)
    compose = compose_variables(COMPOSE_FILE.read_text(encoding="utf-8"))
    listed = {entry.name for entry in example_entries()}

    where = {read.name: read.where() for read in direct_reads()}
    missing = sorted((fields | direct | compose) - listed)
    unread = sorted(listed - fields - direct - compose)
    assert not missing, "read but not in .env.example: " + ", ".join(
        f"{name} ({where.get(name, 'FIELDS' if name in fields else 'docker-compose.yml')})"
        for name in missing
    )
    assert not unread, f"in .env.example but read by nothing: {unread}"


def test_each_name_is_listed_once():
    names = [entry.name for entry in example_entries()]
    assert sorted(n for n in set(names) if names.count(n) > 1) == []


@pytest.mark.parametrize("field", FIELDS, ids=lambda field: field.env)
def test_each_setting_has_its_help_text_and_default(field):
    entries = {e.name: e for e in example_entries()}
    assert field.env in entries, f"{field.env} is not in .env.example"
    entry = entries[field.env]
    assert entry.comment_above == field.help, f".env.example line {entry.line - 1}"
    assert dotenv_values(ENV_EXAMPLE)[field.env] == field.default


def test_the_example_loads_as_it_stands():
    """A copied .env.example must start the config without an error (tokens aside)."""
    settings = load_settings(environ={}, env_file=ENV_EXAMPLE)
    assert settings.bot_token is None
    assert settings.site_api_key.get_secret_value() == UPSTREAM_DEV_SITE_KEY


def test_no_secret_has_a_value_except_the_public_development_key():
    values = dotenv_values(ENV_EXAMPLE)
    secrets = [field.env for field in FIELDS if field.secret]
    secrets += sorted(compose_variables(COMPOSE_FILE.read_text(encoding="utf-8")))
    filled = {name: values[name] for name in secrets if values[name]}
    assert filled == {"API_KEYS_SITE_API": UPSTREAM_DEV_SITE_KEY}


def test_the_sandbox_allow_list_only_names_variables_that_are_read():
    direct = {read.name for read in direct_reads()}
    stale = sorted(set(SANDBOX_INTERNAL) - direct)
    assert stale == [], f"SANDBOX_INTERNAL names no longer read under bot/: {stale}"

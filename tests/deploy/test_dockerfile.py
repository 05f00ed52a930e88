"""The bot's image: slim Python 3.11, runtime dependencies only, non-root, journal volume."""

from __future__ import annotations

import pytest

from tests.deploy.deploy_files import (
    ROOT,
    dockerfile_instructions,
    dockerignore_excludes,
    dockerignore_patterns,
)


@pytest.fixture(scope="module")
def instructions():
    return dockerfile_instructions((ROOT / "Dockerfile").read_text(encoding="utf-8"))


def only(instructions, keyword):
    return [i for i in instructions if i.keyword == keyword]


def test_slim_python_311_base(instructions):
    assert instructions[0].keyword == "FROM"
    assert instructions[0].arguments.split()[0].startswith("python:3.11-slim")


def test_the_last_user_is_not_root(instructions):
    users = only(instructions, "USER")
    assert users, "no USER: the bot would run as root"
    user = users[-1].arguments.split(":")[0]
    assert user not in ("root", "0")
    # Nothing after the switch runs as root again (a later RUN would need root to be useful).
    after = instructions[instructions.index(users[-1]) :]
    assert only(after, "RUN") == []


def test_runs_the_bot(instructions):
    assert only(instructions, "CMD")[-1].exec_form() == ["python", "-m", "bot", "run"]
    assert only(instructions, "ENTRYPOINT") == []


def test_the_journal_directory_is_a_volume(instructions):
    volumes = [v for i in only(instructions, "VOLUME") for v in (i.exec_form() or [i.arguments])]
    assert "/app/data" in volumes
    assert only(instructions, "WORKDIR")[-1].arguments == "/app"  # sqlite:///data/... is relative


def test_installs_no_test_or_dev_extras(instructions):
    runs = only(instructions, "RUN")
    installs = " ".join(i.arguments for i in runs if "pip install" in i.arguments)
    assert "pip install" in installs
    for extra in ("[test]", "[dev]", "'.[", '".[', "-e "):
        assert extra not in installs


def test_the_build_context_keeps_secrets_and_local_state_out(instructions):
    patterns = dockerignore_patterns((ROOT / ".dockerignore").read_text(encoding="utf-8"))
    for path in (".env", ".venv/bin/python", "data/sync-state.sqlite3", ".git/config"):
        assert dockerignore_excludes(patterns, path), f"{path} would be sent to the build"
    copied = [
        source
        for i in only(instructions, "COPY")
        for source in i.arguments.split()[:-1]
        if not source.startswith("--")
    ]
    assert copied
    for source in copied:
        assert not dockerignore_excludes(patterns, source.rstrip("/")), f"COPY {source} is ignored"
        assert (ROOT / source).exists()

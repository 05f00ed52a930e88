"""This project installs next to a host bot whose own top-level package is `bot`.

python-discord/bot's package is `bot` (with a `bot/log.py`), and it runs redis-py 4.6 (through
async-rediscache) and discord.py 2.6/2.7 (through pydis-core). So a throwaway host package named
`bot`, pinning those versions, is installed with this project into a fresh virtual environment
by pip's real resolver (from the package index this machine has), and both are imported from
outside the checkout: each must be the installed one, and pip must find no conflict.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HOST_PINS = ["redis==4.6.0", "discord.py==2.6.4"]

pytestmark = pytest.mark.timeout(300)


def write_host_package(where: Path) -> Path:
    (where / "bot").mkdir(parents=True)
    (where / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""\
            [build-system]
            requires = ["setuptools>=68"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "host-bot"
            version = "1.0"
            dependencies = {json.dumps(HOST_PINS)}

            [tool.setuptools]
            packages = ["bot"]
            """
        )
    )
    (where / "bot" / "__init__.py").write_text('WHO = "the host"\n')
    (where / "bot" / "log.py").write_text('WHO = "the host\'s log"\n')
    return where


def run(*command: str | Path, cwd: Path) -> str:
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, f"{command}: {result.stdout[-2000:]}{result.stderr[-2000:]}"
    return result.stdout


def test_installs_and_imports_next_to_a_host_package_named_bot(tmp_path: Path) -> None:
    host = write_host_package(tmp_path / "host")
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    # The outer pip installs into the fresh environment: no ensurepip, same resolver.
    pip = [sys.executable, "-m", "pip", "--python", python]
    run(
        *pip,
        "install",
        "--quiet",
        "--no-compile",
        "--disable-pip-version-check",
        ROOT,
        host,
        cwd=tmp_path,
    )
    run(*pip, "check", cwd=tmp_path)
    ours = run(*pip, "show", "--files", "guild-sync", cwd=tmp_path).split("Files:")[1].split()
    assert ours and not [path for path in ours if path.startswith("bot/")], ours

    probe = textwrap.dedent(
        """\
        import json, bot, bot.log, discord, redis, guild_sync, guild_sync.exts.sync as ext
        print(json.dumps({
            "bot": bot.WHO, "bot.log": bot.log.WHO, "bot_file": bot.__file__,
            "guild_sync_file": guild_sync.__file__, "setup": callable(ext.setup),
            "discord": discord.__version__, "redis": redis.__version__,
        }))
        """
    )
    seen = json.loads(run(python, "-c", probe, cwd=tmp_path))  # outside the checkout
    site_packages = str(venv / "lib")
    assert (seen["bot"], seen["bot.log"]) == ("the host", "the host's log"), seen
    assert seen["bot_file"].startswith(site_packages), seen
    assert seen["guild_sync_file"].startswith(site_packages), seen
    assert seen["setup"] is True
    assert (seen["discord"], seen["redis"]) == ("2.6.4", "4.6.0"), seen

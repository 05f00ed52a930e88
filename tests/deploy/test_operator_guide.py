"""The operator guide's settings table is the settings table in guild_sync/config.py."""

import re

from guild_sync.config import FIELDS
from tests.deploy.deploy_files import ROOT, compose_variables

GUIDE = ROOT / "README.md"
ROW = re.compile(r"^\| `([A-Z0-9_]+)` \| (?:`([^`]*)`|\(empty\)) \| (.+) \|$")


def settings_rows() -> dict[str, tuple[str, str]]:
    text = GUIDE.read_text(encoding="utf-8")
    section = text.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    return {
        m.group(1): (m.group(2) or "", m.group(3))
        for line in section.splitlines()
        if (m := ROW.match(line))
    }


def test_the_table_has_every_setting_with_its_default_and_help():
    rows = settings_rows()
    assert list(rows) == [field.env for field in FIELDS]
    for field in FIELDS:
        default, meaning = rows[field.env]
        assert default == field.default, field.env
        assert meaning.startswith(field.help.replace("|", "\\|")), field.env


def test_the_compose_only_variables_are_explained():
    text = GUIDE.read_text(encoding="utf-8")
    for name in compose_variables((ROOT / "docker-compose.yml").read_text(encoding="utf-8")):
        assert f"`{name}`" in text

"""Command line: `python -m bot` runs the bot, or the sandbox demo when no token is configured.

python -m bot                      the bot with BOT_TOKEN, else the sandbox demo
python -m bot run                  the bot (BOT_TOKEN required)
python -m bot sandbox [options]    the sandbox demo: loopback Discord, sandbox site, real bot
python -m bot sandbox site ...     only the sandbox site
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from guild_sync.config import SettingsError, load_settings


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args[:2] == ["sandbox", "site"]:
            from bot.sandbox.site.cli import main as site_main

            return site_main(args[2:])
        if args[:1] == ["sandbox"]:
            from bot.sandbox.runner import main as sandbox_main

            return sandbox_main(args[1:])
        if args[:1] == ["run"] or (not args and load_settings().bot_token is not None):
            from bot.runner import main as run_main

            return run_main()
        if not args:
            print("No BOT_TOKEN configured: running the sandbox demo (loopback Discord + site).")
            from bot.sandbox.runner import main as sandbox_main

            return sandbox_main([])
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())

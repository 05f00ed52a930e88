"""`python -m bot sandbox site`: the sandbox site as its own process, until SIGINT or SIGTERM.

It prints exactly one line on stdout once it accepts connections ("sandbox site listening on
URL"), which is what process.py and scenario runners wait for; port 0 picks a free port.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from bot.sandbox.site.cost import COST_MODELS, DEFAULT_WORKERS, OOM_ANSWERS, CostConfig
from bot.sandbox.site.faults import FaultConfig
from bot.sandbox.site.server import DEFAULT_TOKEN, SandboxSite

READY_PREFIX = "sandbox site listening on "


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot sandbox site",
        description="Serve a loopback copy of the community website's users/roles API.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="API key clients must send")
    parser.add_argument("--db", default=":memory:", help="SQLite file (default: in memory)")
    cost = parser.add_argument_group(
        "cost model (bot/sandbox/site/cost.py: modelled time and memory of the real site)"
    )
    cost.add_argument(
        "--cost",
        choices=COST_MODELS,
        default="none",
        help="real: each request waits its modelled time on a worker; none: no cost (default)",
    )
    cost.add_argument(
        "--workers",
        type=int,
        default=DEFAULT_WORKERS,
        metavar="N",
        help=f"workers serving one request each (default {DEFAULT_WORKERS}, as docker-compose.yml)",
    )
    cost.add_argument(
        "--memory-limit-mib",
        type=float,
        metavar="MIB",
        help="the site's memory limit: a request past it dies as an OOM-killed worker",
    )
    cost.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        metavar="X",
        help="real seconds per modelled second (default 1; 0 waits nothing)",
    )
    cost.add_argument("--oom-answer", choices=OOM_ANSWERS, default="drop")
    faults = parser.add_argument_group("fault injection (probabilities per request)")
    faults.add_argument("--fault-500", type=float, default=0.0, metavar="P")
    faults.add_argument("--fault-429", type=float, default=0.0, metavar="P")
    faults.add_argument("--retry-after", type=float, default=0.2, metavar="SECONDS")
    faults.add_argument("--fault-slow", type=float, default=0.0, metavar="P")
    faults.add_argument("--slow-delay", type=float, default=0.5, metavar="SECONDS")
    faults.add_argument("--fault-drop", type=float, default=0.0, metavar="P")
    faults.add_argument("--write-only", action="store_true", help="fault only writes")
    faults.add_argument("--reject-writes", action="store_true", help="answer every write 500")
    faults.add_argument("--seed", type=int, default=0, help="seed of the fault decisions")
    return parser


def fault_arguments(config: FaultConfig) -> list[str]:
    """The command-line flags that reproduce `config` (used to start the site as a process)."""
    args = [
        f"--fault-500={config.error_500}",
        f"--fault-429={config.rate_limit_429}",
        f"--retry-after={config.retry_after}",
        f"--fault-slow={config.slow}",
        f"--slow-delay={config.slow_delay}",
        f"--fault-drop={config.drop}",
        f"--seed={config.seed}",
    ]
    if config.write_only:
        args.append("--write-only")
    if config.reject_writes:
        args.append("--reject-writes")
    return args


def cost_arguments(config: CostConfig) -> list[str]:
    """The command-line flags that reproduce `config`."""
    args = [
        f"--cost={config.model}",
        f"--workers={config.workers}",
        f"--time-scale={config.time_scale}",
        f"--oom-answer={config.oom_answer}",
    ]
    if config.memory_limit_mib is not None:
        args.append(f"--memory-limit-mib={config.memory_limit_mib}")
    return args


async def serve(site: SandboxSite) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await site.start()
    try:
        print(f"{READY_PREFIX}{site.url}", flush=True)
        await stop.wait()
    finally:
        await site.stop()
        site.store.close()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        faults = FaultConfig(
            error_500=args.fault_500,
            rate_limit_429=args.fault_429,
            retry_after=args.retry_after,
            slow=args.fault_slow,
            slow_delay=args.slow_delay,
            drop=args.fault_drop,
            write_only=args.write_only,
            reject_writes=args.reject_writes,
            seed=args.seed,
        )
        cost = CostConfig(
            model=args.cost,
            workers=args.workers,
            memory_limit_mib=args.memory_limit_mib,
            time_scale=args.time_scale,
            oom_answer=args.oom_answer,
        )
    except ValueError as error:
        parser.error(str(error))
    site = SandboxSite(
        token=args.token, faults=faults, db=args.db, host=args.host, port=args.port, cost=cost
    )
    asyncio.run(serve(site))
    return 0


if __name__ == "__main__":
    sys.exit(main())

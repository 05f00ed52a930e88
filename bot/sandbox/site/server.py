"""Running the sandbox site inside the current event loop, for tests and benchmarks."""

from __future__ import annotations

from aiohttp import web

from bot.sandbox.site.app import API_PREFIX, create_app
from bot.sandbox.site.context import SiteState
from bot.sandbox.site.cost import Clock, CostConfig, CostModel
from bot.sandbox.site.faults import FaultConfig, Faults
from bot.sandbox.site.hold import Hold
from bot.sandbox.site.stats import SiteStats
from bot.sandbox.site.store import SiteStore

DEFAULT_TOKEN = "badbot13m0n8f570f942013fc818f234916ca531"


class SandboxSite:
    """The sandbox site on a loopback port: `async with SandboxSite() as site: site.url ...`.

    `store`, `stats`, `faults`, `hold` and `cost` are the live objects the server uses, so a test
    can seed the store, read the stats, switch faults, hold requests and watch the modelled
    workers without going through HTTP. `cost` defaults to no cost model (cost.py); `clock`
    replaces the cost model's real-time clock (tests drive it by hand).
    """

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        faults: FaultConfig | None = None,
        store: SiteStore | None = None,
        db: str = ":memory:",
        host: str = "127.0.0.1",
        port: int = 0,
        cost: CostConfig | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.store = store if store is not None else SiteStore(db)
        self.stats = SiteStats()
        self.faults = Faults(faults)
        self.host = host
        self._requested_port = port
        self.hold = Hold()
        self.cost = CostModel(cost or CostConfig(), clock)
        self._state = SiteState(self.store, self.stats, self.faults, token, self.hold, self.cost)
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    def __repr__(self) -> str:
        return f"SandboxSite(url={self.url!r}, store={self.store!r})"

    @property
    def url(self) -> str:
        """The API base, e.g. http://127.0.0.1:PORT/api (without a trailing slash)."""
        if self.port is None:
            raise RuntimeError("the sandbox site is not started")
        return f"http://{self.host}:{self.port}{API_PREFIX}"

    async def start(self) -> None:
        runner = web.AppRunner(create_app(self._state), access_log=None, handle_signals=False)
        await runner.setup()
        tcp_site = web.TCPSite(runner, self.host, self._requested_port)
        await tcp_site.start()
        self._runner = runner
        self.port = runner.addresses[0][1]

    async def stop(self) -> None:
        self.hold.release()  # a held request would keep the server from shutting down
        self.cost.close()  # and so would one waiting its modelled time
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SandboxSite:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

"""The live message's numbers track the run's real work, not the work found so far.

During a role deletion the holders are found as the site's pages are read: 17,000 stripped of
19,998 found a quarter into the scan of 80,000 users is a fifth of the work, not 85%."""

from guild_sync.engine.progress import ChunkDone, PlanUpdated, RateMeter, RunStarted
from guild_sync.exts.sync._reporter import RunReporter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def quarter_scanned_deletion(clock: Clock) -> RateMeter:
    meter = RateMeter(clock=clock)
    meter.feed(RunStarted("d", "role-delete", "event"))
    meter.feed(PlanUpdated("d", {"strip": 19_998}, 20_000, site_total=80_000))
    for n in range(17):
        clock.now = float(n)
        meter.feed(ChunkDone("d", True, 1000, 0.5, 1))
    return meter


def test_a_streamed_total_is_projected_from_the_share_of_the_site_read() -> None:
    meter = quarter_scanned_deletion(Clock())
    assert meter.projected == 79_992  # 19,998 found in a quarter of the site's users
    assert abs(meter.done / meter.projected - 17_000 / 80_000) < 0.01
    assert meter.eta_s is not None and meter.eta_s > 50  # 63,000 left at 1,000 per second


def test_the_final_plan_is_the_total() -> None:
    meter = quarter_scanned_deletion(Clock())
    meter.feed(PlanUpdated("d", {"strip": 79_998}, 80_000, site_total=80_000, final=True))
    assert meter.projected == 79_998


def test_the_live_message_shows_the_projected_share_and_not_done_just_now() -> None:
    class NoChannel:
        async def send(self, *_: object, **__: object) -> None:
            return None

    reporter = RunReporter(NoChannel(), title="Role deletion", headline="x", run_id="d")
    reporter.meter = quarter_scanned_deletion(Clock())
    text = reporter.render()
    assert "21%" in text and "85%" not in text, text
    assert "17,000 / ~79,992 users" in text, text
    assert "just now" not in text, text

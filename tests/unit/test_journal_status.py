"""How a run's ending counts for the journal and the breaker: records the site refused for
their content are bad data, not a failing site, whatever share of the run they were."""

from guild_sync.exts.sync._bookkeeping import journal_status
from guild_sync.journal import CANCELLED, FAILED, INTERRUPTED, SUCCEEDED


def test_a_run_whose_every_write_was_rejected_for_its_content_is_not_a_failure() -> None:
    assert journal_status("failed", 0, error="") == SUCCEEDED  # nothing written, site healthy
    assert journal_status("partial", 0, error="") == SUCCEEDED


def test_failed_requests_or_a_run_error_count_as_failures() -> None:
    assert journal_status("partial", 1, error="") == FAILED
    assert journal_status("failed", 0, error="GET bot/users: invalid JSON") == FAILED
    assert journal_status("interrupted", 0, error="lease lost") == INTERRUPTED
    assert (journal_status("finished", 0), journal_status("cancelled", 0)) == (SUCCEEDED, CANCELLED)

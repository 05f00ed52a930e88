import logging
import sys

from guild_sync.exts.sync._messages import MESSAGE_LIMIT, fit, id_list, literal, progress_bar
from guild_sync.log import RedactingFormatter, redact
from guild_sync.times import eta


def test_names_render_literally():
    shown = literal("@everyone **bold** <@123> _x_")
    assert "@everyone" not in shown.replace("@\u200beveryone", "")
    assert "\\*\\*bold\\*\\*" in shown


def test_fit_keeps_messages_under_the_limit():
    assert fit("x" * 10) == "x" * 10
    cut = fit("y" * 5000)
    assert len(cut) <= MESSAGE_LIMIT
    assert cut.endswith("(cut to fit)")


def test_progress_bar_and_eta():
    assert progress_bar(0, 100).startswith("`[░")
    assert "50%" in progress_bar(50, 100)
    assert "100%" in progress_bar(5, 0)
    assert eta(None) == "estimating…"
    assert eta(120) == "in 2 minutes"
    # arrow says "just now" for anything under 10 s: a run with thousands of users left is not done
    assert eta(9.4) == "in 9 seconds" and eta(0.4) == "in a second"


def test_id_list_is_bounded():
    assert id_list(range(3)) == "0, 1, 2"
    assert id_list(range(100), limit=2) == "0, 1 … and 98 more"


def test_redaction_covers_arguments_and_tracebacks():
    formatter = RedactingFormatter("%(message)s", ["s3cret"])
    try:
        raise RuntimeError("token s3cret leaked")
    except RuntimeError:
        info = sys.exc_info()
    record = logging.LogRecord("x", logging.ERROR, "f", 1, "auth %s", ("s3cret",), info)
    text = formatter.format(record)
    assert "s3cret" not in text
    assert text.startswith("auth [redacted]\n")
    assert text.endswith("RuntimeError: token [redacted] leaked")
    assert redact("a s3cret b", ["s3cret", ""]) == "a [redacted] b"

"""The destructive-diff guard: an automatic run that would remove a lot asks a moderator first.

A sync started on a partial member cache (or against the wrong guild) would mark most users as
having left. Automatic runs (start-up, events) stop at this guard when the share is above the
configured threshold; a moderator's command is its own confirmation and never stops here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum

import discord

from bot.engine import Plan
from bot.exts.sync.checks import is_moderator
from bot.exts.sync.messages import count, fit, literal

# Stable ids (discord.py would pick random ones) so logs, tests and scenarios can name the buttons.
log = logging.getLogger(__name__)

APPLY_ID, DETAILS_ID, CANCEL_ID = "sync-guard:apply", "sync-guard:details", "sync-guard:cancel"


MIN_GUARDED_USERS = 10
MIN_GUARDED_ROLES = 2


class GuardAnswer(Enum):
    APPLY = "apply"
    CANCEL = "cancel"
    TIMED_OUT = "timed out"


@dataclass(frozen=True)
class GuardVerdict:
    """Whether a plan removes more than the allowed share, and the sentence that says why."""

    trips: bool
    reason: str


def judge(
    *, leaving: int, site_users: int, role_deletes: int, site_roles: int, left_share: float,
    role_share: float,
) -> GuardVerdict:  # fmt: skip
    """Trip on a share above the limit, but never over a handful: one role deleted on Discord
    out of five is a moderator's decision, not a sign that the bot sees the wrong guild."""
    reasons = []
    if leaving >= MIN_GUARDED_USERS and leaving / site_users > left_share:
        reasons.append(
            f"mark {leaving:,} of {site_users:,} users as left ({leaving / site_users:.0%}, "
            f"limit {left_share:.0%})"
        )
    if role_deletes >= MIN_GUARDED_ROLES and role_deletes / site_roles > role_share:
        reasons.append(
            f"delete {role_deletes:,} of {site_roles:,} roles ({role_deletes / site_roles:.0%}, "
            f"limit {role_share:.0%})"
        )
    return GuardVerdict(bool(reasons), " and ".join(reasons))


def describe_plan(plan: Plan) -> str:
    """What a user sync would write: counts per kind and field, and a few sample changes."""
    lines = [
        f"Would create {count(plan.creates)}, update {count(plan.updates)}, mark "
        f"{count(plan.leaves)} as left; {count(plan.unchanged)} unchanged "
        f"({count(plan.scanned)} site users read).",
    ]
    if plan.by_field:
        fields = ", ".join(f"{name} {count(n)}" for name, n in sorted(plan.by_field.items()))
        lines.append(f"Fields: {fields}")
    for change in plan.sample:
        shown = "; ".join(
            f"{name}: {old!r} → {new!r}" for name, (old, new) in change.changes.items()
        )
        lines.append(f"• {change.kind} `{change.user_id}` {literal(shown)}")
    return fit("\n".join(lines))


class GuardView(discord.ui.View):
    """Apply / Dry-run details / Cancel, pressable by moderators only; times out to Cancel."""

    def __init__(
        self,
        moderator_role_ids: Iterable[int],
        details: Callable[[], str],
        timeout: float,
    ) -> None:
        super().__init__(timeout=timeout)
        self.moderator_role_ids = tuple(moderator_role_ids)
        self.details = details
        self.message: discord.Message | None = None
        """The question, set once posted, so a timeout can take its buttons away."""
        self.answer: asyncio.Future[tuple[GuardAnswer, str | None]] = (
            asyncio.get_running_loop().create_future()
        )

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if is_moderator(interaction.user, self.moderator_role_ids):
            return True
        await interaction.response.send_message(
            "Only moderators can answer this.",
            ephemeral=True,
            allowed_mentions=discord.AllowedMentions.none(),
        )
        return False

    def _decide(self, answer: GuardAnswer, who: str | None) -> None:
        if not self.answer.done():
            self.answer.set_result((answer, who))
        self.stop()

    @discord.ui.button(label="Apply", style=discord.ButtonStyle.danger, custom_id=APPLY_ID)
    async def apply(self, interaction: discord.Interaction, _: discord.ui.Button) -> None:
        await interaction.response.edit_message(view=None)
        self._decide(GuardAnswer.APPLY, str(interaction.user))

    @discord.ui.button(
        label="Dry-run details", style=discord.ButtonStyle.secondary, custom_id=DETAILS_ID
    )
    async def show_details(self, interaction: discord.Interaction, _: discord.ui.Button) -> None:
        await interaction.response.send_message(
            fit(self.details()), ephemeral=True, allowed_mentions=discord.AllowedMentions.none()
        )

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary, custom_id=CANCEL_ID)
    async def cancel(self, interaction: discord.Interaction, _: discord.ui.Button) -> None:
        await interaction.response.edit_message(view=None)
        self._decide(GuardAnswer.CANCEL, str(interaction.user))

    async def on_timeout(self) -> None:
        """Cancel, and remove the buttons: nothing listens to them any more, so a click would
        only show Discord's "This interaction failed"."""
        if self.message is not None:
            try:
                await self.message.edit(view=None)
            except discord.HTTPException:
                log.warning("could not remove the buttons of an expired guard question")
        self._decide(GuardAnswer.TIMED_OUT, None)

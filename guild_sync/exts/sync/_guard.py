"""The destructive-diff guard: an automatic run that would remove or rewrite a lot asks first.

A sync started on a partial member cache (or against the wrong guild) would mark most users as
having left; one whose records follow another convention than the site's (@everyone left out of
every member's roles, say) would rewrite one field of every user. Automatic runs (start-up,
events) stop at this guard when a share is above its configured threshold; a moderator's command
is its own confirmation and never stops here (its live message shows the same counts per field
as its pass over the site finds them, see reporter.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum

import discord

from guild_sync.config import Settings
from guild_sync.engine import Plan, SyncEngine
from guild_sync.engine.roles import diff_roles
from guild_sync.exts.sync._checks import is_moderator
from guild_sync.exts.sync._messages import count, field_counts, fit, literal
from guild_sync.site import SiteAPIError

# Stable ids (discord.py would pick random ones) so logs, tests and scenarios can name the buttons.
log = logging.getLogger(__name__)

APPLY_ID, DETAILS_ID, CANCEL_ID = "sync-guard:apply", "sync-guard:details", "sync-guard:cancel"


MIN_GUARDED_USERS = 10
MIN_GUARDED_ROLES = 2


class GuardAnswer(Enum):
    APPLY = "apply"
    CANCEL = "cancel"
    TIMED_OUT = "timed out"


PARTIAL_VIEW = "That usually means the bot sees only part of the guild, or the wrong one."
CONVENTION = (
    "That usually means the bot and the site write a field differently (a convention mismatch, "
    "such as @everyone in every member's roles or not), so it would rewrite it for everyone."
)


@dataclass(frozen=True)
class GuardVerdict:
    """Whether a plan removes or rewrites more than the allowed share, the clause that says what,
    and the sentences that say what that usually means."""

    trips: bool
    reason: str
    explanation: str = ""


def judge(
    *, leaving: int, site_users: int, role_deletes: int, site_roles: int, left_share: float,
    role_share: float, field_updates: Mapping[str, int] | None = None, update_share: float = 1.0,
) -> GuardVerdict:  # fmt: skip
    """Trip on a share above the limit, but never over a handful: one role deleted on Discord
    out of five is a moderator's decision, not a sign that the bot sees the wrong guild.

    `field_updates` (per field, the site users an update would write it for) trips each field on
    its own: a convention mismatch rewrites one field for everyone, while a busy day renames
    some and gives others roles."""
    reasons = []
    if leaving >= MIN_GUARDED_USERS and leaving / site_users > left_share:
        reasons.append(
            f"mark {leaving:,} of {site_users:,} users as left ({leaving / site_users:.0%}, "
            f"limit {left_share:.0%})"
        )
    rewritten = sorted(
        (name, n)
        for name, n in (field_updates or {}).items()
        if n >= MIN_GUARDED_USERS and site_users and n / site_users > update_share
    )
    for name, n in rewritten:
        reasons.append(
            f"write {name} for {n:,} of {site_users:,} users ({n / site_users:.0%}, "
            f"limit {update_share:.0%})"
        )
    if role_deletes >= MIN_GUARDED_ROLES and role_deletes / site_roles > role_share:
        reasons.append(
            f"delete {role_deletes:,} of {site_roles:,} roles ({role_deletes / site_roles:.0%}, "
            f"limit {role_share:.0%})"
        )
    explanations = [PARTIAL_VIEW] if len(reasons) > len(rewritten) else []
    if rewritten:
        explanations.append(CONVENTION)
    return GuardVerdict(bool(reasons), " and ".join(reasons), " ".join(explanations))


def describe_plan(plan: Plan) -> str:
    """What a user sync would write: counts per kind and field, and a few sample changes."""
    lines = [
        f"Would create {count(plan.creates)}, update {count(plan.updates)}, mark "
        f"{count(plan.leaves)} as left; {count(plan.unchanged)} unchanged "
        f"({count(plan.scanned)} site users read).",
    ]
    if plan.by_field:
        lines.append(f"Fields: {field_counts(plan.by_field, plan.scanned)}")
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
        guild_id: int | None,
    ) -> None:
        super().__init__(timeout=timeout)
        self.moderator_role_ids = tuple(moderator_role_ids)
        self.guild_id = guild_id
        self.details = details
        self.message: discord.Message | None = None
        """The question, set once posted, so a timeout can take its buttons away."""
        self.answer: asyncio.Future[tuple[GuardAnswer, str | None]] = (
            asyncio.get_running_loop().create_future()
        )

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if is_moderator(interaction.user, self.moderator_role_ids, self.guild_id):
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


class Guard:
    """Asks a moderator before an automatic run removes more than the allowed share."""

    def __init__(
        self,
        *,
        settings: Settings,
        engine: SyncEngine,
        post: Callable[..., Awaitable[discord.Message | None]],
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.post = post
        self._plans: dict[str, Plan] = {}

    def take_plan(self, kind: str) -> Plan | None:
        """The recorded plan `allows` made for this kind's run, once: the run sends its writes
        instead of reading every page of the site a second time."""
        return self._plans.pop(kind, None)

    async def allows(self, kind: str, title: str) -> bool:
        """Ask a moderator before an automatic run removes more than the allowed share.

        If the site cannot even be read for the plan, the run goes ahead and fails on its own,
        so the failure is journalled and counted by the breaker like any other."""
        try:
            if kind == "users":
                plan = await self.engine.plan_users(record=True)
                self._plans[kind] = plan
                verdict = judge(
                    leaving=plan.leaves,
                    site_users=plan.scanned,
                    role_deletes=0,
                    site_roles=0,
                    left_share=self.settings.guard_left_share,
                    role_share=self.settings.guard_role_delete_share,
                    field_updates=plan.update_fields,
                    update_share=self.settings.guard_update_share,
                )
                details = describe_plan(plan)
            elif kind == "roles":
                site_roles = await self.engine.client.list_roles()
                role_diff = diff_roles(self.engine.guild.roles(), site_roles)
                verdict = judge(
                    leaving=0,
                    site_users=0,
                    role_deletes=len(role_diff.deleted),
                    site_roles=len(site_roles),
                    left_share=self.settings.guard_left_share,
                    role_share=self.settings.guard_role_delete_share,
                )
                names = {role.id: role.name for role in site_roles}
                details = "Would delete: " + ", ".join(
                    f"{literal(names[role_id])} (`{role_id}`)" for role_id in role_diff.deleted
                )
            else:
                return True
        except SiteAPIError as error:
            log.warning("could not plan the automatic %s run (%s); running it", kind, error)
            return True
        if not verdict.trips:
            return True
        view = GuardView(
            self.settings.moderator_role_ids,
            details=lambda: details,
            timeout=self.settings.guard_timeout,
            guild_id=self.settings.guild_id,
        )
        title = title.lower()
        message = await self.post(
            f"🛑 An automatic {title} would {verdict.reason}. {verdict.explanation} Nothing was "
            "written. A moderator can apply it, look at the details (the counts per field and a "
            "sample of the differences), or cancel.",
            view=view,
        )
        if message is None:
            return False
        view.message = message
        answer, who = await view.answer
        outcome = {
            GuardAnswer.APPLY: f"applied by {literal(who or '?')}",
            GuardAnswer.CANCEL: f"cancelled by {literal(who or '?')}",
            GuardAnswer.TIMED_OUT: "cancelled: nobody answered in time",
        }[answer]
        await self.post(f"Guard for the automatic {title}: {outcome}.")
        return answer is GuardAnswer.APPLY

"""A loopback Discord: an aiohttp server on 127.0.0.1 speaking enough of Discord's REST API
(v10) and gateway that an unmodified discord.py 2.7 bot logs in, chunks a guild of 100,000
members, receives member, role, message and interaction events, and sends, edits and reads
messages. Tests drive the guild through `LoopbackDiscord` and read back every message version.

Fidelity limits (what real Discord does that this emulator does not):
- Gateway frames are plain JSON text: no zlib/zstd transport compression, no ETF encoding, no
  gateway send rate limit (120 per 60 s, close 4008), no heartbeat timeout enforcement, no
  RECONNECT (op 7) unless a test drops sockets, no sharding limits (shard filtering only),
  no session start limits, no presences (GUILD_PRESENCES is accepted, never populated).
- GUILD_CREATE holds all members only when the guild is not large; large guilds carry just the
  bot's member. REQUEST_GUILD_MEMBERS with query/user_ids works; presences are never sent and
  a request for all members is answered even without the GUILD_MEMBERS intent.
- Permissions are not enforced: the bot may post, edit and change roles anywhere. Role hierarchy,
  channel overwrites, audit log reasons, mentions parsing (`mentions` is always empty) and
  allowed_mentions semantics are stored, not applied. MESSAGE_CONTENT redaction applies to
  every message not written by the bot (Discord also keeps content for mentions and DMs).
- No DMs, threads, reactions, stickers, polls, application commands, autocomplete or modals
  beyond storing a modal response. Attachments are stored with the message version (name and
  bytes, `MessageVersion.files`), never served back as URLs.
- Rate limits exist only for message sends and edits (per channel, fixed window, default 5 per
  5 s); no global limit, no shared-bucket or sub-limit behaviour beyond
  `advertise_rate_limits=False`, which withholds headers so clients meet 429s.
- Resume replay buffers are trimmed by heartbeat acknowledgements and capped at 10,000
  dispatches; with the default 41.25 s heartbeat a 100k member chunking stays buffered
  (about 40 MiB) until the next heartbeat. Sessions never expire by time.
- Interactions: components only (type 3); tokens never expire (the 3 s callback deadline is
  enforced); ephemeral responses are stored like other messages.
- Username changes arrive, as on Discord, as GUILD_MEMBER_UPDATE in every guild holding the
  user (USER_UPDATE only for the bot itself), but never as PRESENCE_UPDATE user patches.
"""

from .client_patch import point_discord_py_at
from .server import Counters, LoopbackDiscord

__all__ = ["Counters", "LoopbackDiscord", "point_discord_py_at"]

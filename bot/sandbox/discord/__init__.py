"""A loopback Discord: an aiohttp server on 127.0.0.1 speaking enough of Discord's REST API
(v10) and gateway that an unmodified discord.py 2.7 bot logs in, chunks a guild of 100,000
members, receives member, role, message and interaction events, and sends, edits and reads
messages. Tests drive the guild through `LoopbackDiscord` and read back every message version.

Fidelity limits (what real Discord does that this emulator does not):
- Gateway frames are plain JSON text: no zlib/zstd transport compression, no ETF encoding, no
  gateway send rate limit (120 per 60 s, close 4008), no sharding limits (shard filtering only),
  no session start limits, no presences (GUILD_PRESENCES is accepted, never populated).
- Gateway faults, each off by default (a `LoopbackDiscord` keyword switches it on from the start,
  a method at any time) and, when on, modelled on Discord's docs:
  - a close with 4007 or 4009 (`drop_gateway(close_code=...)`) ends the session ("reconnect and
    start a new session"): the RESUME gets INVALID_SESSION d=false and the client gets a fresh
    READY. Any other close, or a TCP abort, keeps it resumable;
  - `session_expiry_s` / `expire_sessions_after`: a session cannot resume once its socket has
    been gone that long (Discord keeps one "a few minutes"; its length is unpublished). While
    off, sessions never expire by time;
  - `member_request_window_s` / `limit_member_requests` (Discord's 30 s): a request for all of a
    guild's members (query "" and limit 0) within the window of the last one answered gets a
    RATE_LIMITED dispatch (`opcode` 8, `retry_after` in seconds, `meta` with `guild_id` and
    `nonce`) and no chunks. Requests are timed even while it is off, and the window is per
    guild for the whole emulator (per bot: `note_member_request` stands for another process of
    the bot asking); Discord's changelog also calls it "per session", which is not modelled;
  - `chunk_interval_s` / `pace_chunks`, `hold_chunks(after)` / `release_chunks`: member chunks
    one at a time, other dispatches (joins, leaves, updates) between them. Each paced chunk is
    built when sent from the members then still in the guild (a leaver is skipped, a changed
    member sent as now), which Discord does not promise; a joiner is in no chunk, only in its
    GUILD_MEMBER_ADD. Unpaced chunks are all sent at once, built at the request;
  - `make_guild_unavailable` / `make_guild_available`: an outage (GUILD_DELETE `unavailable:
    true`, later a GUILD_CREATE with the guild's state then) or, before the bot connects, a
    guild that READY lists unavailable with no GUILD_CREATE until the test says;
    `guild_create_delay_s` sends every GUILD_CREATE that long after READY. While a guild is
    unavailable no event of it is sent (`gateway_stats.withheld` counts them) and its member
    requests are not answered, but REST still answers for it (Discord's may fail) and its
    members may still change (Discord's cannot while it is down; discord.py keeps its old
    member objects, so a member who left meanwhile would stay in its cache);
  - `heartbeat_timeout_multiple` / `enforce_heartbeats`: a connection that sends no heartbeat
    for that many intervals is closed with 4009 (Discord's docs name no code for it), which ends
    its session;
  - `request_reconnect()` sends op 7 RECONNECT; the client resumes. Discord also closes the
    socket some time after op 7, which is not modelled.
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
- Rate limits are counted only for message sends and edits (per channel, fixed window, default
  5 per 5 s) and, once `limit_interaction_routes()` switches them on, for an interaction's
  follow-ups and response edits (per token, 5 per 5 s each: Discord publishes no numbers). No
  shared-bucket or sub-limit behaviour beyond `advertise_rate_limits=False`, which withholds
  headers so clients meet 429s.
- REST faults are injected, never caused by traffic, each off until a test switches it on for
  the next N requests of chosen routes: global 429s (`rate_limit_globally`: `global: true`,
  `X-RateLimit-Global`, `X-RateLimit-Scope: global`, Retry-After; the 50 per second limit itself
  is not counted, and interaction endpoints are exempt as on Discord), Cloudflare bans
  (`ban_by_cloudflare`: 429 without `Via`, which discord.py raises at once; the 10,000 invalid
  requests per 10 minutes that cause one are not counted) and 5xx pages from the edge
  (`fail_requests`, 502 by default). `faults_served` counts each one answered.
- Edits of messages older than an hour meet error 30046 once `limit_old_message_edits(allowed)`
  is on and `allowed` such edits are spent (the real limit's size and window are unpublished; it
  stays exhausted until switched off). It is answered as Discord does, a 429 with `code: 30046`,
  `Via` and `X-RateLimit-Scope: shared` (so discord.py sleeps its `retry_after` and tries five
  times before raising), not as a 400. Age comes from `backdate_message`; a message's id and
  `timestamp` keep its real creation time.
- Resume replay buffers are trimmed by heartbeat acknowledgements and capped at 10,000
  dispatches; with the default 41.25 s heartbeat a 100k member chunking stays buffered
  (about 40 MiB) until the next heartbeat.
- Interactions: components only (type 3); tokens never expire (the 3 s callback deadline is
  enforced); ephemeral responses are stored like other messages.
- Username changes arrive, as on Discord, as GUILD_MEMBER_UPDATE in every guild holding the
  user (USER_UPDATE only for the bot itself), but never as PRESENCE_UPDATE user patches.
"""

from .client_patch import point_discord_py_at
from .server import Counters, LoopbackDiscord

__all__ = ["Counters", "LoopbackDiscord", "point_discord_py_at"]

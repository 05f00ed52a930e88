"""A loopback Discord: an aiohttp server on 127.0.0.1 speaking enough of Discord's REST API
(v10) and gateway that an unmodified discord.py 2.7 bot logs in, chunks a guild of 100,000
members, receives member, role, message and interaction events (button clicks and slash
commands), registers application commands, and sends, edits and reads messages. Tests drive
the guild through `LoopbackDiscord` (`slash_command` runs a command as a given member) and read
back every message version and every interaction's answers.

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
  channel overwrites, audit log reasons and allowed_mentions semantics are stored, not applied.
  `mentions` lists the users a message's content mentions (`<@id>`); role, channel and
  @everyone mentions are never parsed. A session without MESSAGE_CONTENT gets other people's
  messages empty, except those mentioning the bot, as on Discord (which also keeps DMs, which
  the emulator has none of).
- No DMs, threads, reactions, stickers, polls, autocomplete or modals beyond storing a modal
  response. Attachments are stored with the message version (name and
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
- Application commands: registered by bulk overwrite (PUT) and read (GET), global or per guild;
  a command keeping its name keeps its id. No single-command create, edit or delete routes, no
  permissions routes (a test sets a guild's overwrites, as its administrators would in Server
  Settings → Integrations, with `set_command_permissions`), no 200-creations-a-day limit, and
  global commands show at once. A registration is checked for names, descriptions, nesting,
  required-before-optional and counts (400, 50035), not for the total payload size;
  `withhold_command_scope` answers 403 as for a bot invited without applications.commands.
- Who may invoke a command: the owner and administrators; else the command's overwrites for
  the member, then for their roles (an allow wins), then for @everyone; else its
  `default_member_permissions` against the member's guild permissions. Channel overwrites and
  the application-wide overwrites are not modelled; `contexts` and `dm_permission` are ignored
  (every invocation is in a guild channel).
- Interactions: button clicks (type 3) and chat-input slash commands (type 2) with string,
  integer, boolean and number options; no context menus, no user, role, channel or attachment
  options (no `resolved`), no autocomplete or modal submits. The callback must come within 3 s
  (later: 10062 Unknown interaction; `interaction_failed`), and the token serves follow-ups and
  @original for 15 minutes (later: 404 Unknown Webhook, 10015, for every call; Discord answers
  some such calls 401). Both deadlines read `interaction_clock`, which a test `advance`s.
  Ephemeral responses are stored, and dispatched as MESSAGE_CREATE, like other messages
  (Discord sends no event for them).
- Username changes arrive, as on Discord, as GUILD_MEMBER_UPDATE in every guild holding the
  user (USER_UPDATE only for the bot itself), but never as PRESENCE_UPDATE user patches.
"""

from .client_patch import point_discord_py_at
from .server import Counters, LoopbackDiscord

__all__ = ["Counters", "LoopbackDiscord", "point_discord_py_at"]

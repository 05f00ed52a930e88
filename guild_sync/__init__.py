"""guild-sync: keeps a community website's copy of its Discord guild true, in bounded chunks.

The extension is `guild_sync.exts.sync`: `await bot.load_extension("guild_sync.exts.sync")`, or
`await bot.load_extensions(guild_sync.exts)` on a pydis_core bot (its walk finds exactly that
module). Everything else here (engine, site client, journal, settings) is what it is built on.
"""

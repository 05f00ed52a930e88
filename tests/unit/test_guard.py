from guild_sync.exts.sync._guard import judge


def verdict(**counts):
    values = dict(leaving=0, site_users=0, role_deletes=0, site_roles=0)
    values.update(counts)
    return judge(**values, left_share=0.10, role_share=0.10)


def test_a_partial_cache_trips_the_guard_and_says_why():
    tripped = verdict(leaving=600, site_users=1000)
    assert tripped.trips
    assert tripped.reason == "mark 600 of 1,000 users as left (60%, limit 10%)"


def test_shares_at_the_limit_or_tiny_counts_pass():
    assert not verdict(leaving=100, site_users=1000).trips
    assert not verdict(leaving=5, site_users=20).trips  # a handful is never guarded
    assert not verdict(role_deletes=1, site_roles=5).trips  # one role deleted on Discord


def test_many_role_deletes_trip_with_users_reasons_joined():
    tripped = verdict(leaving=500, site_users=1000, role_deletes=3, site_roles=6)
    assert tripped.trips
    assert " and delete 3 of 6 roles (50%, limit 10%)" in tripped.reason


def update_verdict(field_updates, site_users, share=0.25):
    return judge(
        leaving=0, site_users=site_users, role_deletes=0, site_roles=0, left_share=0.10,
        role_share=0.10, field_updates=field_updates, update_share=share,
    )  # fmt: skip


def test_a_field_written_for_many_users_trips_the_update_guard_and_names_the_field():
    tripped = update_verdict({"roles": 900, "name": 3}, site_users=1000)
    assert tripped.trips
    assert tripped.reason == "write roles for 900 of 1,000 users (90%, limit 25%)"
    assert "convention" in tripped.explanation


def test_the_update_guard_goes_by_each_field_not_by_their_sum():
    # 20% rename and 20% new roles: 40% of users written, but no one field over 25%.
    assert not update_verdict({"name": 200, "roles": 200}, site_users=1000).trips
    assert not update_verdict({"roles": 250}, site_users=1000).trips  # at the limit
    assert not update_verdict({"roles": 9}, site_users=10).trips  # a handful is never guarded
    both = update_verdict({"roles": 900, "display_name": 600}, site_users=1000)
    assert both.reason == (
        "write display_name for 600 of 1,000 users (60%, limit 25%) and "
        "write roles for 900 of 1,000 users (90%, limit 25%)"
    )


def test_a_runs_live_message_shows_the_field_counts_its_pass_has_found_so_far():
    import asyncio

    from guild_sync.engine.progress import PlanUpdated
    from guild_sync.exts.sync._reporter import RunReporter

    class NoChannel:
        async def send(self, *_: object, **__: object) -> None:
            return None

    reporter = RunReporter(NoChannel(), title="User sync", headline="users", run_id="u")
    planned = {"create": 0, "update": 900, "leave": 0}
    asyncio.run(reporter.feed(PlanUpdated("u", planned, 1000, by_field={"roles": 900})))
    assert (
        "Fields so far (counted as the site is read, written as found): roles 900 (90%)"
        in reporter.render()
    )
    final = PlanUpdated("u", planned, 2000, final=True, by_field={"roles": 1900, "name": 2})
    asyncio.run(reporter.feed(final))
    assert "\nFields: name 2 (0%), roles 1,900 (95%)\n" in reporter.render()

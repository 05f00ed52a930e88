from bot.exts.sync.guard import judge


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

import random

import pytest

from guild_sync.site.errors import SiteAPIError
from guild_sync.site.records import RecordError, Role, User
from guild_sync.site.retry import RetryPolicy


def test_user_round_trips_and_sorts_roles():
    data = {"id": 5, "name": "a", "display_name": "A", "discriminator": 0, "roles": [3, 1]}
    user = User.from_json(data)
    assert user.roles == frozenset({1, 3})
    assert user.in_guild is True
    assert user.to_json() == {**data, "roles": [1, 3], "in_guild": True}


@pytest.mark.parametrize(
    "bad",
    [
        {"id": "5", "name": "a", "discriminator": 0},
        {"id": 5, "name": None, "discriminator": 0},
        {"id": 5, "name": "a", "discriminator": True},
        {"id": 5, "name": "a", "discriminator": 0, "roles": "1,2"},
        {"id": 5, "name": "a", "discriminator": 0, "in_guild": "yes"},
        {"id": 5, "name": "a", "discriminator": 0, "display_name": None},
        [1, 2],
    ],
)
def test_malformed_users_are_a_record_error(bad):
    with pytest.raises(RecordError):
        User.from_json(bad)


def test_differing_fields_compares_roles_as_sets():
    a = User(1, "a", "A", 0, frozenset({1, 2}))
    assert a.differing_fields(User(1, "a", "A", 0, frozenset({2, 1}))) == frozenset()
    b = User(1, "b", "A", 0, frozenset({2}), in_guild=False)
    assert a.differing_fields(b) == {"name", "roles", "in_guild"}
    assert b.fields_json({"roles"}) == {"roles": [2]}


def test_role_round_trip():
    data = {"id": 1, "name": "Mods", "colour": 255, "permissions": 8, "position": 3}
    assert Role.from_json(data).to_json() == data
    with pytest.raises(RecordError):
        Role.from_json({**data, "colour": "blue"})


def test_backoff_grows_is_capped_and_jittered():
    policy = RetryPolicy(attempts=10, base_delay=1.0, max_delay=8.0, rng=random.Random(1))
    delays = [policy.delay(n) for n in range(1, 10) for _ in range(50)]
    assert all(0 <= d <= 8.0 for d in delays)
    assert len({round(d, 6) for d in delays}) > 100  # jittered, not a fixed schedule
    assert max(policy.delay(1) for _ in range(100)) <= 1.0


def test_retry_after_is_a_floor_but_capped():
    policy = RetryPolicy(base_delay=0.1, max_delay=1.0, max_retry_after=30.0)
    assert policy.delay(1, retry_after=5.0) >= 5.0
    assert policy.delay(1, retry_after=10_000.0) == 30.0


def test_transient_errors():
    assert SiteAPIError("GET", "x", None, reason="reset").transient
    assert SiteAPIError("GET", "x", 429).transient
    assert SiteAPIError("GET", "x", 502).transient
    assert not SiteAPIError("GET", "x", 400, {"id": ["bad"]}).transient
    assert not SiteAPIError("GET", "x", 404).transient
    assert "HTTP 400" in str(SiteAPIError("PATCH", "bot/users/bulk_patch", 400, {"a": 1}))

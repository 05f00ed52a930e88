"""The site client against the sandbox site over real HTTP: paging, retries, typed errors."""

import random

import pytest

from bot.sandbox.site import DEFAULT_TOKEN, FaultConfig, SandboxSite
from guild_sync.site import RetryPolicy, SiteAPIError, SiteClient
from guild_sync.site.records import Role, User

FAST = dict(base_delay=0.01, max_delay=0.05, max_retry_after=0.05)


def users(n: int, start: int = 1) -> list[User]:
    return [User(i, f"user{i}", f"User {i}", 0, frozenset()) for i in range(start, start + n)]


@pytest.fixture
async def site():
    async with SandboxSite() as running:
        yield running


def client_for(site: SandboxSite, attempts: int = 5, retries: list | None = None) -> SiteClient:
    def record(error, attempt, wait):
        if retries is not None:
            retries.append((error.status, error.reason, attempt))

    policy = RetryPolicy(attempts=attempts, rng=random.Random(7), **FAST)
    return SiteClient(site.url, DEFAULT_TOKEN, retry=policy, on_retry=record, timeout=5)


async def test_pages_are_walked_one_at_a_time_in_id_order(site):
    site.store.seed([], users(23))
    async with client_for(site) as client:
        pages = [page async for page in client.iter_user_pages(page_size=10)]
    assert [len(page) for page in pages] == [10, 10, 3]
    assert [u.id for page in pages for u in page] == list(range(1, 24))
    assert site.stats.by_route["GET /api/bot/users"] == 3


@pytest.mark.parametrize(
    "fault",
    [
        FaultConfig(error_500=1.0, seed=1),
        FaultConfig(rate_limit_429=1.0, retry_after=0.01, seed=1),
        FaultConfig(drop=1.0, seed=1),
    ],
    ids=["500", "429", "reset"],
)
async def test_transient_failures_are_retried_until_the_site_answers(site, fault):
    site.store.seed([], users(3))
    async with client_for(site) as client:
        site.faults.configure(fault, reseed=True)
        failures_left = 2

        def heal(*_):
            nonlocal failures_left
            failures_left -= 1
            if failures_left == 0:
                site.faults.configure(FaultConfig(), reseed=True)

        client.on_retry = heal
        patched = await client.bulk_patch_users([{"id": 1, "name": "renamed"}])
    assert failures_left == 0  # two failed attempts, then the answer
    assert [u["name"] for u in patched] == ["renamed"]
    assert next(site.store.all_users()).name == "renamed"


async def test_giving_up_after_the_bounded_attempts_raises_the_typed_error(site):
    site.store.seed([], users(1))
    retries: list = []
    site.faults.configure(FaultConfig(error_500=1.0), reseed=True)
    async with client_for(site, attempts=3, retries=retries) as client:
        with pytest.raises(SiteAPIError) as info:
            await client.bulk_patch_users([{"id": 1, "name": "x"}])
    error = info.value
    assert error.status == 500 and error.transient
    assert "<title>Server Error (500)</title>" in error.body  # the HTML page, cut short
    assert [attempt for *_, attempt in retries] == [1, 2]


async def test_contract_errors_are_not_retried_and_carry_the_sites_body(site):
    site.store.seed([Role(5, "Mods", 0, 0, 1)], users(2))
    retries: list = []
    async with client_for(site, retries=retries) as client:
        with pytest.raises(SiteAPIError) as unknown:
            await client.bulk_patch_users([{"id": 1, "name": "a"}, {"id": 999999, "name": "b"}])
        with pytest.raises(SiteAPIError) as repeated:
            await client.bulk_patch_users([{"id": 1, "name": "a"}, {"id": 1, "name": "b"}])
        with pytest.raises(SiteAPIError) as bad_item:
            await client.bulk_patch_users([{"id": 1}, {"id": 2, "discriminator": 4.5}])
        with pytest.raises(SiteAPIError) as bad_role:
            await client.bulk_patch_users([{"id": 1, "roles": [5]}, {"id": 2, "roles": [6]}])
        with pytest.raises(ValueError, match="never send one"):
            await client.bulk_patch_users([])
    assert (unknown.value.status, unknown.value.body) == (
        404,
        {"detail": "User with id 999999 not found."},
    )
    assert repeated.value.body == {"id": ["User with ID 1 given multiple times."]}
    assert bad_item.value.status == 400
    assert bad_item.value.body == [{}, {"discriminator": ["A valid integer is required."]}]
    assert bad_role.value.body[0] == {}
    assert bad_role.value.body[1] == {"roles": ["Role with ID 6 does not exist"]}
    assert retries == []
    assert [u.name for u in site.store.all_users()] == ["user1", "user2"]  # nothing written


async def test_wrong_token_is_a_401_with_the_sites_detail(site):
    async with SiteClient(site.url, "wrong", retry=RetryPolicy(attempts=1)) as client:
        with pytest.raises(SiteAPIError) as info:
            await client.list_roles()
    assert (info.value.status, info.value.body) == (401, {"detail": "Invalid token."})


async def test_nothing_listening_is_a_transient_error_without_status():
    async with SiteClient(
        "http://127.0.0.1:9/api", "t", retry=RetryPolicy(attempts=2, **FAST)
    ) as client:
        with pytest.raises(SiteAPIError) as info:
            await client.healthcheck()
    assert info.value.status is None and info.value.transient
    assert "no response" in str(info.value)


async def test_roles_and_creates_round_trip(site):
    async with client_for(site) as client:
        await client.create_role(Role(7, "Helpers", 255, 8, 2))
        await client.create_users(users(3))
        await client.create_users(users(2, start=3))  # 3 exists: skipped, 4 created
        await client.delete_role(7)
        await client.delete_role(7)  # already gone: still fine
        assert await client.list_roles() == []
        assert (await client.get_user(4)).name == "user4"
        assert await client.get_user(404) is None

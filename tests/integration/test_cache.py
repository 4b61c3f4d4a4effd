"""Wall read models are memoized with the data version in the key, in-process or in Redis."""
from __future__ import annotations

import pytest
from data_sources.runtime import get_runtime
from data_sources.store.db import get_db
from incidents import services
from incidents.queries import wall as queries_wall
from tests.conftest import REDIS_URL, build_app
from tests.integration.helpers import NOW, count_statements


@pytest.fixture(params=["simple", "redis"])
def cached_app(request, tmp_path):
    if request.param == "redis":
        if not REDIS_URL:
            pytest.skip("Redis: set CITYOPS_TEST_REDIS_URL (CI does)")
        import redis
        redis.Redis.from_url(REDIS_URL).flushdb()
        return build_app(f"sqlite:///{tmp_path / 'c.db'}", CACHE_URL=REDIS_URL)
    return build_app(f"sqlite:///{tmp_path / 'c.db'}")


def test_many_screens_share_one_computation_and_a_write_shows_at_once(cached_app):
    server = cached_app.server
    counter = count_statements(server)
    with server.app_context():
        first = queries_wall.wall_data(NOW, "Asia/Shanghai")
        cold = counter["q"]
        for _ in range(20):  # twenty screens polling
            assert queries_wall.wall_data(NOW, "Asia/Shanghai") == first
        warm = counter["q"] - cold
        assert cold > 5 and warm == 20  # one data-version read per screen, nothing else
        rules = get_runtime(server).rules
        with get_db(server).session_scope() as s:
            services.create_case(s, rules, source="t", external_id="1", channel="12345", title="新案件",
                                 reported_at=NOW, now=NOW, category_code="E0101", lon=120.15, lat=30.25)
        after = queries_wall.wall_data(NOW, "Asia/Shanghai")
    assert after.version > first.version
    assert sum(after.by_state.values()) == sum(first.by_state.values()) + 1


def test_two_databases_never_share_cached_answers(tmp_path):
    if not REDIS_URL:
        pytest.skip("Redis: set CITYOPS_TEST_REDIS_URL (CI does)")
    a = build_app(f"sqlite:///{tmp_path / 'a.db'}", CACHE_URL=REDIS_URL)
    b = build_app(f"sqlite:///{tmp_path / 'b.db'}", CACHE_URL=REDIS_URL)
    rules = get_runtime(a.server).rules
    with get_db(a.server).session_scope() as s:
        services.create_case(s, rules, source="t", external_id="1", channel="12345", title="A 的案件",
                             reported_at=NOW, now=NOW, category_code="E0101", lon=120.15, lat=30.25)
    with get_db(b.server).session_scope() as s:  # same data version number, different data
        services.bump_data_version(s)
    with a.server.app_context():
        in_a = queries_wall.wall_data(NOW, "Asia/Shanghai")
    with b.server.app_context():
        in_b = queries_wall.wall_data(NOW, "Asia/Shanghai")
    assert in_a.version == in_b.version
    assert sum(in_a.by_state.values()) == 1 and sum(in_b.by_state.values()) == 0

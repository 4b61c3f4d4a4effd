"""IoT alarms over MQTT against the real Mosquitto broker on 127.0.0.1:1883 (CI starts it): a
published alarm becomes a case at its device's place, repeats fold into that case, a clear closes
it, a bad payload is quarantined with its topic and reason. Each test has topics of its own."""
from __future__ import annotations

import json
import shutil
import socket
import time
import uuid

import pytest
from sqlalchemy import select

from data_sources import worker
from data_sources.feeds.config import parse_feeds
from data_sources.packs import PACKS_DIR
from data_sources.runtime import get_runtime
from data_sources.store.db import get_db
from incidents import services
from incidents.model import Role
from incidents.queries.cases import case_detail
from incidents.queries.feeds import feed_health_rows
from incidents.tables import FeedRun, Incident, Quarantine
from tests.conftest import BACKENDS, IN_CI, PG_URL, build_app, pg_test_url, reset_postgres

BROKER = ("127.0.0.1", 1883)
DEADLINE = 15.0
HYDRANT = (120.1593, 30.2585)     # 上城区 (by the lake)


def _broker_up() -> bool:
    try:
        with socket.create_connection(BROKER, timeout=1.0):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def broker():
    if not _broker_up():
        if IN_CI:
            pytest.fail("Mosquitto is not running on 127.0.0.1:1883 (.ci/run starts it)")
        pytest.skip("Mosquitto: start it with `mosquitto -d -c /etc/mosquitto/mosquitto.conf` (CI does)")


@pytest.fixture(scope="module")
def iot_pack(tmp_path_factory):
    """The Hangzhou pack with a devices.csv and clears allowed to close cases."""
    folder = tmp_path_factory.mktemp("packs") / "hangzhou_iot"
    shutil.copytree(PACKS_DIR / "hangzhou", folder)
    with (folder / "pack.toml").open("a", encoding="utf-8") as f:
        f.write("\n[iot]\nclose_on_clear = true\n")
    (folder / "devices.csv").write_text(
        "device_id,lon,lat,district_code,category_code,name\n"
        f"HYD-1,{HYDRANT[0]},{HYDRANT[1]},330102,C0110,湖滨 消火栓 1号\n"
        f"HYD-2,{HYDRANT[0] + 0.01},{HYDRANT[1]},330102,C0110,湖滨 消火栓 2号\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module", params=BACKENDS)
def iot_app(request, iot_pack, tmp_path_factory):
    """One app per backend on the IoT pack for the module: each test has a feed (source) of its own."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('mqtt') / 'cityops.db'}"
    else:
        if not PG_URL:
            pytest.skip("PostgreSQL: set CITYOPS_TEST_DATABASE_URL to run (CI does)")
        url = pg_test_url("mqtt")
        reset_postgres(url)
    app = build_app(url, PACK=str(iot_pack))
    yield app
    get_db(app.server).dispose()


def _feed(base: str, url: str = "mqtt://127.0.0.1:1883"):
    """A feed of this test's own: its name (the cases' source) and topics."""
    name = f"iot-{uuid.uuid4().hex[:10]}"
    [feed] = parse_feeds(f'[feeds.{name}]\nkind = "mqtt"\nurl = "{url}"\ntopics = ["{base}/#"]\n'
                         f'interval = "1h"\n', "feeds.toml")
    return feed


@pytest.fixture
def alarms(broker, iot_app):
    """A feed on topics of this test's own, its subscriber started (subscribed), and a publisher."""
    import paho.mqtt.client as mqtt
    base = f"cityops-test/{uuid.uuid4().hex[:12]}"
    feed = _feed(base)
    server = iot_app.server
    with server.app_context():
        [sub] = worker.subscriptions(server, [feed])
    sub.start()
    assert sub.subscribed.wait(DEADLINE), "the broker did not grant the subscription"
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
    pub.connect(*BROKER)
    pub.loop_start()
    sent = {"n": 0}

    def publish(suffix: str, payload) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload, ensure_ascii=False).encode()
        pub.publish(f"{base}/{suffix}", body, qos=1).wait_for_publish(DEADLINE)
        sent["n"] += 1

    def settled() -> None:
        """Every published message processed (polled with a deadline)."""
        end = time.monotonic() + DEADLINE
        while sub.processed < sent["n"]:
            assert time.monotonic() < end, f"{sub.processed} of {sent['n']} messages processed in {DEADLINE:g} s"
            time.sleep(0.05)

    yield type("Alarms", (), {"server": server, "publish": staticmethod(publish), "settled": staticmethod(settled),
                              "sub": sub, "base": base, "feed": feed.name})
    pub.loop_stop()
    pub.disconnect()
    sub.stop()


def _cases(server, feed: str) -> list[Incident]:
    with get_db(server).session_scope() as s:
        rows = s.scalars(select(Incident).where(Incident.source == feed).order_by(Incident.id)).all()
        s.expunge_all()
        return rows


def test_an_alarm_becomes_a_case_at_its_devices_place(alarms):
    alarms.publish("hydrants/HYD-1", {"device_id": "HYD-1", "event": "alarm", "message": "消火栓水压低"})
    alarms.settled()
    [case] = _cases(alarms.server, alarms.feed)
    assert (case.external_id, case.channel, case.category_code, case.state) == ("HYD-1#1", "iot", "C0110",
                                                                                 "registered")
    assert (case.lon, case.lat, case.district_code) == (HYDRANT[0], HYDRANT[1], "330102")
    assert case.title == "消火栓水压低" and case.alarm_count == 1


def test_repeated_alarms_of_a_device_fold_into_its_open_case_with_a_counter(alarms):
    for _ in range(3):
        alarms.publish("hydrants/HYD-1", {"device_id": "HYD-1", "event": "alarm", "message": "消火栓水压低"})
    alarms.publish("hydrants/HYD-2", {"device_id": "HYD-2", "event": "alarm", "message": "消火栓水压低"})
    alarms.settled()
    cases = _cases(alarms.server, alarms.feed)
    assert [(c.external_id, c.alarm_count) for c in cases] == [("HYD-1#1", 3), ("HYD-2#1", 1)]
    with alarms.server.app_context():      # the case panel shows the counter (the API's counters.alarms too)
        detail = case_detail(cases[0].updated_at, cases[0].id, rules=get_runtime(alarms.server).rules,
                             role="dispatcher", department_code=None)
    assert detail["alarm_count"] == 3
    alarms.sub.stop()          # closes the feed run
    with get_db(alarms.server).session_scope() as s:
        [run] = s.scalars(select(FeedRun).where(FeedRun.feed == alarms.feed)).all()
        assert (run.status, run.received, run.inserted, run.updated, run.quarantined) == ("ok", 4, 2, 2, 0)
        [health] = [h for h in feed_health_rows(s, run.finished_at) if h.feed == alarms.feed]   # GET /api/v1/feeds
        assert (health.runs_24h, health.received_24h, health.last_run_status) == (1, 4, "ok")


def test_a_clear_closes_the_open_case_and_the_next_alarm_opens_a_new_one(alarms):
    server = alarms.server
    alarms.publish("hydrants/HYD-1", {"device_id": "HYD-1", "event": "alarm"})
    alarms.publish("hydrants/HYD-2", {"device_id": "HYD-2", "event": "alarm"})
    alarms.settled()
    second = _cases(server, alarms.feed)[1]
    with server.app_context(), get_db(server).session_scope() as s:   # HYD-2's case goes to a department
        services.perform(s, get_runtime(server).rules, services.Actor("d1", Role.DISPATCHER), second.id,
                         "dispatch", version=second.version, now=second.updated_at, department="330106-CGJ")
    alarms.publish("pumps/P-7", {"device_id": "P-7", "event": "alarm", "category_code": "E0405",   # not in devices.csv
                                 "lon": HYDRANT[0], "lat": HYDRANT[1], "message": "积水"})
    alarms.publish("hydrants/HYD-1", {"device_id": "HYD-1", "event": "clear"})
    alarms.publish("hydrants/HYD-2", {"device_id": "HYD-2", "event": "clear"})
    alarms.publish("pumps/P-7", {"device_id": "P-7", "event": "clear"})     # a clear needs no category nor place
    alarms.publish("hydrants/HYD-1", {"device_id": "HYD-1", "event": "alarm"})
    alarms.settled()
    cases = _cases(server, alarms.feed)
    assert [(c.external_id, c.state, c.void_reason) for c in cases] == [
        ("HYD-1#1", "voided", "cleared"),        # cleared before anyone was sent
        ("HYD-2#1", "closed", None),             # resolved and verified by the clear
        ("P-7#1", "voided", "cleared"),
        ("HYD-1#2", "registered", None)]


def test_a_bad_payload_is_quarantined_with_its_topic_and_reason(alarms):
    alarms.publish("hydrants/HYD-1", b"\x00not json{")
    alarms.publish("hydrants/HYD-1", {"device_id": "HYD-1", "event": "exploded"})
    alarms.publish("hydrants/HYD-9", {"device_id": "HYD-9", "event": "alarm"})   # not in devices.csv, no category
    alarms.settled()
    assert _cases(alarms.server, alarms.feed) == []
    with get_db(alarms.server).session_scope() as s:
        rows = s.scalars(select(Quarantine).where(Quarantine.feed == alarms.feed).order_by(Quarantine.id)).all()
        reasons = [r.reason for r in rows]
    assert len(reasons) == 3
    assert all(r.startswith(f"topic {alarms.base}/hydrants/") for r in reasons), reasons
    assert "not JSON" in reasons[0]
    assert "unknown status 'exploded'" in reasons[1]
    assert "category" in reasons[2] and "HYD-9" in reasons[2].split(":")[0]


def test_without_redis_the_app_process_runs_the_declared_feeds_and_the_demo_tick(broker, iot_pack, db_url, tmp_path):
    """The embedded default: no Redis for jobs, so the app process subscribes the mqtt feed and runs
    the http feed and the demo feed's tick on their schedule (worker.InProcess)."""
    import paho.mqtt.publish as publish
    from data_sources.feeds import simulator
    from tests.integration.test_worker import _Endpoint
    endpoint = _Endpoint([{"external_id": "E1", "title": "井盖缺失", "category_code": "C0101",
                           "reported_at": "2024-05-06 09:00", "lon": HYDRANT[0], "lat": HYDRANT[1]}], failures=0)
    base = f"cityops-test/{uuid.uuid4().hex[:12]}"
    feeds = tmp_path / "feeds.toml"
    feeds.write_text(f'[feeds.partner]\nkind = "http"\nurl = "{endpoint.url}"\ninterval = "1h"\n\n'
                     f'[feeds.sensors]\nkind = "mqtt"\nurl = "mqtt://127.0.0.1:1883"\ntopics = ["{base}/#"]\n',
                     encoding="utf-8")
    app = build_app(db_url, PACK=str(iot_pack), FEEDS_FILE=str(feeds), DEMO_FEED=True, DEMO_TICK_SECONDS=1.0,
                    CACHE_URL="", WORKER_REDIS_URL="")
    server = app.server
    runner = worker.InProcess(server, lock_path=str(tmp_path / "jobs.lock"))
    try:
        assert runner.start()
        assert runner.started.wait(DEADLINE) and [j.name for j in runner.jobs] == ["feed:partner", "demo-tick"]
        [sub] = runner.subs
        assert sub.subscribed.wait(DEADLINE)
        publish.single(f"{base}/HYD-1", json.dumps({"device_id": "HYD-1"}), qos=1, hostname=BROKER[0], port=BROKER[1])
        end = time.monotonic() + DEADLINE
        while True:
            with get_db(server).session_scope() as s:
                sources = set(s.scalars(select(Incident.source).where(Incident.source.in_(("partner", "sensors")))))
                ticked = simulator.last_slot(s) is not None
            if sources == {"partner", "sensors"} and ticked:
                break
            assert time.monotonic() < end, (sources, ticked)
            time.sleep(0.1)
    finally:
        runner.stop()
        endpoint.close()
        get_db(server).dispose()


def test_an_unreachable_broker_shows_as_a_feed_run_in_error(iot_app):
    feed = _feed("x", url="mqtt://127.0.0.1:1")
    server = iot_app.server
    with server.app_context():
        [sub] = worker.subscriptions(server, [feed])
    sub.start()
    try:
        end = time.monotonic() + DEADLINE
        while True:
            with get_db(server).session_scope() as s:
                runs = [(r.status, r.error) for r in s.scalars(select(FeedRun).where(FeedRun.feed == feed.name,
                                                                                     FeedRun.finished_at.is_not(None)))]
            if runs:
                break
            assert time.monotonic() < end, "no feed run recorded the unreachable broker"
            time.sleep(0.1)
        assert runs == [("error", "MQTT broker 127.0.0.1:1 unreachable")]
    finally:
        sub.stop()


def test_the_next_holder_of_the_feed_gets_what_the_last_one_had_not_applied(broker, iot_app):
    """A worker's persistent session: a message its holder took but did not apply (it failed, or the
    worker died) and one that came while no worker held the feed both reach the next holder."""
    import paho.mqtt.client as mqtt
    import paho.mqtt.publish as publish
    base = f"cityops-test/{uuid.uuid4().hex[:12]}"
    feed = _feed(base)
    server = iot_app.server
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    with server.app_context():
        [(_name, make)] = worker.subscription_factories(server, [feed], client_prefix=prefix)
    alarm = json.dumps({"device_id": "HYD-1", "event": "alarm"})
    first = make()

    def dies(*_args):
        raise RuntimeError("the database went away")

    first.folder.handle = dies
    try:
        first.start()
        assert first.subscribed.wait(DEADLINE)
        publish.single(f"{base}/HYD-1", alarm, qos=1, hostname=BROKER[0], port=BROKER[1])
        end = time.monotonic() + DEADLINE
        while first.processed < 1:
            assert time.monotonic() < end
            time.sleep(0.05)
        first.stop()
        publish.single(f"{base}/HYD-1", alarm, qos=1, hostname=BROKER[0], port=BROKER[1])   # no one holds it
        second = make().start()
        try:
            end = time.monotonic() + DEADLINE
            while second.processed < 2:
                assert time.monotonic() < end, f"{second.processed} of 2 messages reached the next holder"
                time.sleep(0.05)
        finally:
            second.stop()
        assert [(c.external_id, c.alarm_count) for c in _cases(server, feed.name)] == [("HYD-1#1", 2)]
    finally:
        cleaner = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{prefix}-{feed.name}", clean_session=True)
        cleaner.connect(*BROKER)     # ends the persistent session the test made
        cleaner.disconnect()

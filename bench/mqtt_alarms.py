"""IoT alarm throughput over MQTT: N alarms of D devices (most of them repeats, folded into each
device's open case) published at once to the real broker (127.0.0.1:1883, QoS 1) and applied by one
subscriber (data_sources.feeds.mqtt), against the peer measured in the same run: the same messages
handed straight to the alarm folder (no broker, no network, no queue) on a fresh database.

    python -m bench.mqtt_alarms --alarms 2000 --devices 200

SQLite database under /tmp (made fresh per run: migrations and the Hangzhou pack, no demo data).
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench._common import header


def _app(folder: Path):
    from app import create_app
    from data_sources.seed import init_db
    app = create_app({"DATABASE_URL": f"sqlite:///{folder / 'cityops.db'}", "TESTING": True, "DEMO_FEED": False,
                      "SECRET_KEY": "bench", "EXPORT_DIR": str(folder / "exports"), "MEDIA_DIR": str(folder / "media")})
    init_db(app.server, echo=lambda *_: None, seed_demo=False)
    return app.server


def _messages(n: int, devices: int, seed: int = 11) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        d = rng.randrange(devices)
        out.append(json.dumps({"device_id": f"DEV-{d:05d}", "event": "alarm", "message": "水位超限",
                               "category_code": "E0405", "lon": round(120.10 + d % 50 * 0.002, 6),
                               "lat": round(30.25 + d // 50 * 0.002, 6)}).encode())
    return out


def _feed(name: str, base: str):
    from data_sources.feeds.config import parse_feeds
    [feed] = parse_feeds(f'[feeds.{name}]\nkind = "mqtt"\nurl = "mqtt://127.0.0.1:1883"\ntopics = ["{base}/#"]\n'
                         f'interval = "1h"\n', "feeds.toml")
    return feed


def over_broker(server, messages: list[bytes]) -> float:
    import paho.mqtt.client as mqtt
    from data_sources import worker
    base = f"cityops-bench/{uuid.uuid4().hex[:10]}"
    with server.app_context():
        [sub] = worker.subscriptions(server, [_feed("bench-mqtt", base)])
    sub.start()
    if not sub.subscribed.wait(15):
        raise SystemExit("the broker on 127.0.0.1:1883 did not grant the subscription (is Mosquitto running?)")
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-{uuid.uuid4().hex[:8]}")
    pub.max_inflight_messages_set(1000)
    pub.max_queued_messages_set(0)
    pub.connect("127.0.0.1", 1883)
    pub.loop_start()
    t0 = time.perf_counter()
    infos = [pub.publish(f"{base}/alarms", m, qos=1) for m in messages]
    for info in infos:
        info.wait_for_publish(60)
    while sub.processed < len(messages):
        time.sleep(0.01)
    elapsed = time.perf_counter() - t0
    pub.loop_stop()
    pub.disconnect()
    sub.stop()
    return elapsed


def direct(server, messages: list[bytes]) -> float:
    from data_sources.feeds.mqtt import AlarmFolder
    from data_sources.packs import load_iot
    from data_sources.runtime import get_runtime
    from data_sources.store.db import get_db
    rt = get_runtime(server)
    with server.app_context():
        folder = AlarmFolder(get_db(server), rt.rules, rt.pack, load_iot(rt.pack), "iot_alarm", "bench-direct")
        t0 = time.perf_counter()
        for m in messages:
            folder.handle("bench/alarms", m)
        folder.finish()
        return time.perf_counter() - t0


def _check(server, source: str, n: int, devices_hit: int) -> None:
    from sqlalchemy import func, select
    from data_sources.store.db import get_db
    from incidents.tables import Incident
    with get_db(server).session_scope() as s:
        cases, alarms = s.execute(select(func.count(), func.sum(Incident.alarm_count))
                                  .where(Incident.source == source)).one()
    if (cases, alarms) != (devices_hit, n):
        raise SystemExit(f"{source}: {cases} cases holding {alarms} alarms, expected {devices_hit} holding {n}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alarms", type=int, default=2000)
    parser.add_argument("--devices", type=int, default=200)
    args = parser.parse_args(argv)
    header("IoT alarms over MQTT: publish -> folded cases", argv)
    messages = _messages(args.alarms, args.devices)
    hit = len({json.loads(m)["device_id"] for m in messages})
    with tempfile.TemporaryDirectory(prefix="cityops-bench-mqtt-") as tmp:
        a, b = Path(tmp) / "broker", Path(tmp) / "direct"
        a.mkdir(), b.mkdir()
        server_a, server_b = _app(a), _app(b)
        t_broker = over_broker(server_a, messages)
        _check(server_a, "bench-mqtt", args.alarms, hit)
        t_direct = direct(server_b, messages)
        _check(server_b, "bench-direct", args.alarms, hit)
    rate, peer = args.alarms / t_broker, args.alarms / t_direct
    print(f"{args.alarms:,} alarms of {hit:,} devices -> {hit:,} cases (the rest folded), SQLite")
    print(f"  over the broker (publish -> applied): {t_broker:7.2f} s  {rate:8.0f} alarms/s")
    print(f"  straight into the folder (peer):      {t_direct:7.2f} s  {peer:8.0f} alarms/s")
    print(f"  broker + queue overhead: x{t_broker / t_direct:.2f}")
    print(f"RESULT mqtt_alarms_per_s={rate:.0f} direct_alarms_per_s={peer:.0f} "
          f"broker_over_direct={t_broker / t_direct:.2f} alarms={args.alarms} devices={hit}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

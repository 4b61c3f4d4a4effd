"""feeds.toml (feeds as data, validated with file/line/key errors) and the scheduler's rules: a job
runs once per slot of its interval, a failed run is retried after doubling waits."""
from __future__ import annotations

import pytest

from data_sources.feeds.config import FeedsError, parse_feeds
from data_sources.worker import Job, LocalClaims, Scheduler, run_with_retries

EXAMPLE = """\
[feeds.partner]
kind = "http"
url = "https://partner.example/api/records"
mapping = "native"
interval = "5m"
token_env = "PARTNER_TOKEN"

[feeds.chicago]
kind = "open311"
url = "https://311api.cityofchicago.org/open311/v2"
interval = 900

[feeds.sensors]
kind = "mqtt"
url = "mqtt://127.0.0.1:1883"
topics = ["city/alarms/#"]
"""


def test_an_example_feeds_file_declares_each_kind_with_its_defaults():
    feeds = {f.name: f for f in parse_feeds(EXAMPLE, "feeds.toml")}
    assert {n: (f.spec.kind, f.spec.interval, f.mapping) for n, f in feeds.items()} == {
        "partner": ("http", 300.0, "native"), "chicago": ("open311", 900.0, "open311"),
        "sensors": ("mqtt", 300.0, "iot_alarm")}
    assert feeds["sensors"].source == "sensors"


def test_a_credential_comes_from_the_environment_variable_the_file_names(monkeypatch):
    [feed] = [f for f in parse_feeds(EXAMPLE, "feeds.toml") if f.name == "partner"]
    monkeypatch.delenv("PARTNER_TOKEN", raising=False)
    with pytest.raises(KeyError, match="PARTNER_TOKEN"):
        feed.secret("token_env")
    monkeypatch.setenv("PARTNER_TOKEN", "s3cret")
    assert feed.secret("token_env") == "s3cret"


@pytest.mark.parametrize("text, where, message", [
    ('[feeds.a]\nkind = "http"\nurl = "https://x.example"\nintervall = 60\n', "feeds.toml line 4, key feeds.a.intervall",
     "unknown key"),
    ('[feeds.a]\nkind = "ftp"\nurl = "https://x.example"\n', "feeds.toml line 2, key feeds.a.kind", "'http'"),
    ('[feeds.a]\nkind = "http"\nurl = "https://x.example"\ninterval = "soon"\n',
     "feeds.toml line 4, key feeds.a.interval", "duration"),
    ('[feeds.a]\nkind = "http"\nurl = "https://u:pw@x.example"\n', "feeds.toml line 1, key feeds.a",
     "credentials never go in the URL"),
    ('[feeds.a]\nkind = "mqtt"\nurl = "mqtt://broker"\n', "feeds.toml line 1, key feeds.a", "needs topics"),
    ('[feeds.a]\nkind = "http"\nurl = "https://x.example"\nmapping = "nosuch"\n',
     "feeds.toml line 4, key feeds.a.mapping", "unknown mapping 'nosuch'"),
    ('[feeds.a]\nkind = "http"\nurl = "https://x.example"\ntoken_env = "abc def"\n',
     "feeds.toml line 4, key feeds.a.token_env", "not an environment variable name"),
])
def test_a_mistake_in_the_feeds_file_is_reported_with_its_line_and_key(text, where, message):
    with pytest.raises(FeedsError) as err:
        parse_feeds(text, "feeds.toml")
    assert err.value.where == where and message in err.value.message


def test_a_job_is_submitted_once_per_slot_of_its_interval():
    ran = []
    sched = Scheduler([Job("j", 60.0, lambda: None)], LocalClaims(), lambda job, slot: ran.append(slot))
    for t in (600.0, 610.0, 659.9, 660.0, 700.0, 720.0):
        sched.tick(t)
    assert ran == [10, 11, 12]


def test_a_failed_job_is_retried_after_doubling_waits_then_given_up():
    waits, calls = [], []

    def flaky():
        calls.append(1)
        raise RuntimeError("source down")

    job = Job("j", 3600.0, flaky, retries=3, backoff=10.0)
    assert run_with_retries(job, sleep=waits.append) is False
    assert (len(calls), waits) == (4, [10, 20, 40])
    calls.clear()
    ok = Job("k", 3600.0, lambda: calls.append(1), retries=3)
    assert run_with_retries(ok, sleep=waits.append) is True and calls == [1]

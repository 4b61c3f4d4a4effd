"""Feed contract, file adapters and named mappings: pure, no database."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import SHARED_DATA

from data_sources.feeds.base import (UNREADABLE, FeedContext, Rejected, clean_text, parse_number,
                                     parse_timestamp)
from data_sources.feeds.files import decode, read_records
from data_sources.feeds.mappings import MAPPINGS
from data_sources.packs import PackError, load_mapping, load_pack
from incidents.model import State

NY = ZoneInfo("America/New_York")

DATA = SHARED_DATA


@pytest.fixture(scope="module")
def nyc_ctx():
    return FeedContext(load_pack("nyc"), now=datetime(2030, 1, 1, tzinfo=timezone.utc))


@pytest.fixture(scope="module")
def sf_ctx():
    return FeedContext(load_pack("sf"), now=datetime(2030, 1, 1, tzinfo=timezone.utc))


def test_timestamps_excel_iso_offsets_and_naive_in_pack_zone():
    assert parse_timestamp("10/21/18 0:59", NY) == datetime(2018, 10, 21, 4, 59, tzinfo=timezone.utc)
    assert parse_timestamp("10/21/2018 12:59:00 AM", NY) == datetime(2018, 10, 21, 4, 59, tzinfo=timezone.utc)
    assert parse_timestamp("2014-10-31T11:39:56-05:00", NY) == datetime(2014, 10, 31, 16, 39, 56, tzinfo=timezone.utc)
    assert parse_timestamp("2016-07-13 15:11:07+00:00", NY).hour == 15
    assert parse_timestamp("2018-01-02T03:04:05Z", NY).hour == 3
    assert parse_timestamp("", NY) is None
    with pytest.raises(ValueError, match="unreadable timestamp"):
        parse_timestamp("yesterday-ish", NY)


def test_numbers_with_thousands_separators():
    assert parse_number("1,017,901") == 1017901.0
    assert parse_number(" -73.87862009 ") == -73.87862009
    assert parse_number("") is None
    with pytest.raises(ValueError):
        parse_number("12,34")


def test_clean_text_strips_html_and_rejects_undecodable_bytes():
    assert clean_text("<b>Pothole</b> <script>alert(1)</script>on 5th&nbsp;Ave") == "Pothole on 5th\xa0Ave"
    assert "<" not in clean_text("&lt;img src=x onerror=alert(1)&gt; hi")
    with pytest.raises(ValueError, match="encoding"):
        clean_text("caf\ufffd")


@pytest.mark.parametrize("status,notes,expected", [
    ("Closed (Duplicate)", None, (State.VOIDED, "duplicate")),
    ("closed", "Duplicate", (State.VOIDED, "duplicate")),
    ("Closed", None, (State.CLOSED, None)),
    ("Open", None, (State.REGISTERED, None)),
    ("Assigned", None, (State.DISPATCHED, None)),
    ("Pending", None, (State.DISPATCHED, None)),
    ("In Progress", None, (State.IN_PROGRESS, None)),
    ("Started", None, (State.IN_PROGRESS, None)),
    ("Cancelled", None, (State.VOIDED, "invalid")),
])
def test_status_normalisation(status, notes, expected):
    assert MAPPINGS["nyc311"].status({"Status": status, "Resolution Description": notes})[:2] == expected


def test_unknown_status_is_rejected():
    with pytest.raises(Rejected, match="unknown status"):
        MAPPINGS["nyc311"].status({"Status": "Teleported"})


def test_mapping_tables_of_the_packs():
    assert len(load_mapping(load_pack("hangzhou"))) == 0  # optional file: old packs keep working
    sf = load_mapping(load_pack("sf"))
    assert sf.lookup("queue", "DPW Ops Queue").department_code == "DPW"
    assert sf.lookup("queue", "PUC Sewer Ops").department_code == "PUC"
    assert sf.lookup("complaint_type", "General Request - MTA").category_code == "GENERAL"
    assert sf.lookup("complaint_type", "Unheard of") is None
    nyc = load_mapping(load_pack("nyc"))
    assert nyc.lookup("complaint_type", "heat/hot water").category_code == "HEAT"
    assert nyc.lookup("complaint_type", "Something new").category_code == "OTHER"  # '*' -> triage category


def test_mapping_csv_errors_name_file_and_line(tmp_path):
    import shutil
    pack_dir = tmp_path / "p"
    shutil.copytree(load_pack("sf").path, pack_dir)
    (pack_dir / "mapping.csv").write_text("kind,value,department_code,category_code\nqueue,X,NOPE,\n")
    with pytest.raises(PackError, match=r"mapping.csv line 2: department_code NOPE"):
        load_mapping(load_pack(pack_dir))
    (pack_dir / "mapping.csv").write_text("kind,value,department_code,category_code\nfoo,X,DPW,\n")
    with pytest.raises(PackError, match="line 2: kind 'foo'"):
        load_mapping(load_pack(pack_dir))


def test_nyc_record(nyc_ctx):
    raw, _ = next(iter(read_records(f"{DATA}/nyc311_2018-10-21_fullday.csv")))
    case = MAPPINGS["nyc311"].to_case(raw, nyc_ctx)
    assert case.external_id == "40611598" and case.category_code == "DERELICT"
    assert case.department_code == "NYPD" and case.state == State.CLOSED
    assert case.reported_at == datetime(2018, 10, 21, 4, 0, tzinfo=timezone.utc)
    assert case.closed_at == datetime(2018, 10, 21, 4, 59, tzinfo=timezone.utc)
    assert (case.lon, case.lat) == (-73.8786201, 40.7105189)


def test_sf_placeholder_kept_without_location(sf_ctx):
    raw, _ = next(iter(read_records(f"{DATA}/sf311_sample_2008-2018.csv")))
    case = MAPPINGS["sf311"].to_case(raw, sf_ctx)
    assert case.lon is None and case.lat is None
    assert "placeholder" in case.location_note
    assert case.department_code == "PUC" and case.category_code == "SEWER"


def test_sf_unknown_category_and_out_of_area(sf_ctx):
    raw, _ = next(iter(read_records(f"{DATA}/sf311_sample_2008-2018.csv")))
    with pytest.raises(Rejected, match="unknown complaint type"):
        MAPPINGS["sf311"].to_case({**raw, "category": "Alien landing"}, sf_ctx)
    away = MAPPINGS["sf311"].to_case({**raw, "latitude": "40.7", "longitude": "-74.0"}, sf_ctx)
    assert away.lon is None and "outside the area" in away.flags["location unknown"]
    with pytest.raises(Rejected, match="closed before created"):
        MAPPINGS["sf311"].to_case({**raw, "closed_date": "2001-01-01 00:00:00+00:00"}, sf_ctx)
    with pytest.raises(Rejected, match="unreadable timestamp"):
        MAPPINGS["sf311"].to_case({**raw, "created_date": "32/13/2016 25:00"}, sf_ctx)
    with pytest.raises(Rejected, match="external_id: is missing"):
        MAPPINGS["sf311"].to_case({**raw, "unique_key": ""}, sf_ctx)
    with pytest.raises(Rejected, match="characters long"):
        MAPPINGS["sf311"].to_case({**raw, "status_notes": "x" * 30_000}, sf_ctx)
    long_notes = MAPPINGS["sf311"].to_case({**raw, "status_notes": "y" * 5000}, sf_ctx)
    assert len(long_notes.description) == 4000


def test_file_adapters(tmp_path):
    gbk = tmp_path / "gbk.csv"
    gbk.write_bytes("external_id,title\nA1,井盖缺失\n".encode("gbk"))
    assert list(read_records(gbk)) == [({"external_id": "A1", "title": "井盖缺失"}, 2)]
    assert decode("井盖".encode("gb18030"))[1] == "gb18030"
    assert decode("\ufeff井盖".encode("utf-8"))[1] == "utf-8-sig"
    nd = tmp_path / "x.ndjson"
    nd.write_text('{"a": 1}\n{broken\n[1]\n')
    out = list(read_records(nd))
    assert out[0] == ({"a": 1}, 1) and UNREADABLE in out[1][0] and UNREADABLE in out[2][0]
    js = tmp_path / "x.json"
    js.write_text(json.dumps({"requests": [{"a": 1}, {"a": 2}]}))
    assert [r for r, _ in read_records(js)] == [{"a": 1}, {"a": 2}]
    from openpyxl import Workbook
    wb = Workbook()
    wb.active.append(["external_id", "reported_at"])
    wb.active.append(["X1", datetime(2024, 5, 1, 9, 30)])
    wb.save(tmp_path / "x.xlsx")
    assert list(read_records(tmp_path / "x.xlsx")) == [({"external_id": "X1", "reported_at": "2024-05-01 09:30:00"}, 2)]


def _variant(mapping, **tables):
    """``mapping`` with some keys of its tables changed: ``coordinates={"required": True}``."""
    from data_sources.feeds.mappings import DeclarativeMapping
    spec = mapping.spec.model_copy(update={name: getattr(mapping.spec, name).model_copy(update=keys)
                                           for name, keys in tables.items()})
    return DeclarativeMapping(spec, mapping.ref, mapping.path)


def test_closed_before_created_is_quarantined_or_kept_flagged_as_the_mapping_says(sf_ctx):
    raw, _ = next(iter(read_records(f"{DATA}/sf311_sample_2008-2018.csv")))
    early = {**raw, "status": "Closed", "closed_date": "2001-01-01 00:00:00+00:00"}
    with pytest.raises(Rejected, match=r"^closed before created \(closed 2001-01-01 00:00Z"):
        MAPPINGS["sf311"].to_case(early, sf_ctx)
    kept = _variant(MAPPINGS["sf311"], timestamps={"closed_before_created": "keep"}).to_case(early, sf_ctx)
    assert kept.state == State.CLOSED and kept.closed_at == kept.resolved_at == kept.reported_at
    assert kept.flags["closed before created"].startswith("closed before created (closed 2001-01-01 00:00Z")
    assert "closed before created" not in MAPPINGS["sf311"].to_case(raw, sf_ctx).flags


@pytest.mark.parametrize("lon, lat, said", [
    ("-74.0", "40.7", "outside the area of pack sf"),
    ("0", "0", "placeholder coordinates 0,0"),
    ("-122.4x", "37.77", "unreadable coordinates (lon '-122.4x' is not a number)"),
    ("-122.42", "", "only one of longitude/latitude given"),
    ("500", "37.7", "is not a longitude/latitude pair"),
])
def test_an_unusable_location_is_kept_unknown_and_flagged_unless_required(sf_ctx, lon, lat, said):
    raw, _ = next(iter(read_records(f"{DATA}/sf311_sample_2008-2018.csv")))
    bad = {**raw, "longitude": lon, "latitude": lat}
    case = MAPPINGS["sf311"].to_case(bad, sf_ctx)
    assert case.lon is None and case.lat is None
    assert said in case.flags["location unknown"] and said in case.location_note
    with pytest.raises(Rejected, match="is not a number" if "unreadable" in said else said):
        _variant(MAPPINGS["sf311"], coordinates={"required": True}).to_case(bad, sf_ctx)


def test_the_mappings_placeholder_point_is_flagged_and_required_rejects_it(sf_ctx):
    raw, _ = next(iter(read_records(f"{DATA}/sf311_sample_2008-2018.csv")))   # on SF's placeholder point
    assert "placeholder" in MAPPINGS["sf311"].to_case(raw, sf_ctx).flags["location unknown"]
    with pytest.raises(Rejected, match="placeholder coordinates"):
        _variant(MAPPINGS["sf311"], coordinates={"required": True}).to_case(raw, sf_ctx)
    good = {**raw, "longitude": "-122.4194", "latitude": "37.7749"}
    assert MAPPINGS["sf311"].to_case(good, sf_ctx).flags == {}


def test_an_unknown_type_goes_to_the_catch_all_with_the_source_type_unless_rejected(nyc_ctx, sf_ctx):
    raw, _ = next(iter(read_records(f"{DATA}/nyc311_2018-10-21_fullday.csv")))
    odd = {**raw, "Complaint Type": "Alien Landing"}
    case = MAPPINGS["nyc311"].to_case(odd, nyc_ctx)          # the NYC pack's '*' row: OTHER
    assert case.category_code == "OTHER" and case.source_type == "Alien Landing"
    assert case.flags == {"unknown type": "Alien Landing"}
    assert MAPPINGS["nyc311"].to_case(raw, nyc_ctx).source_type is None
    with pytest.raises(Rejected, match="the mapping rejects unknown types"):
        _variant(MAPPINGS["nyc311"], category={"unknown": "reject"}).to_case(odd, nyc_ctx)
    # a pack without a '*' row: the mapping names the catch-all
    sf_raw, _ = next(iter(read_records(f"{DATA}/sf311_sample_2008-2018.csv")))
    alien = {**sf_raw, "category": "Alien landing"}
    with pytest.raises(Rejected, match="unknown complaint type"):
        MAPPINGS["sf311"].to_case(alien, sf_ctx)
    kept = _variant(MAPPINGS["sf311"], category={"catch_all": "OTHER"}).to_case(alien, sf_ctx)
    assert kept.category_code == "OTHER" and kept.source_type == "Alien landing"

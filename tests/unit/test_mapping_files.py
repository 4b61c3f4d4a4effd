"""Mappings as data: the mapping files (TOML) are validated before any record is read, a mistake
names its line and key, and the one generic mapper reads the built-in files, Open311 XML and
custom files. Pure, no database."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from data_sources.feeds.base import FeedContext, Rejected
from data_sources.feeds.files import read_records, service_names, with_service_names, xml_records
from data_sources.feeds.mappings import (BUILTIN_DIR, MAPPINGS, MappingError, get_mapping, load_mapping_file,
                                         parse_spec)
from data_sources.packs import load_pack
from tests.conftest import SHARED_DATA
from incidents.model import Channel, State

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "open311"
NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def sf_ctx():
    return FeedContext(load_pack("sf"), now=NOW)


@pytest.fixture(scope="module")
def nyc_ctx():
    return FeedContext(load_pack("nyc"), now=NOW)


def _broken(text: str) -> MappingError:
    with pytest.raises(MappingError) as err:
        parse_spec(text, "city.toml")
    return err.value


NATIVE = (BUILTIN_DIR / "native.toml").read_text()


def test_the_built_in_mappings_are_files_read_by_one_mapper():
    assert sorted(MAPPINGS) == ["iot_alarm", "native", "nyc311", "open311", "sf311"]
    assert {type(MAPPINGS[n]).__name__ for n in MAPPINGS} == {"DeclarativeMapping"}
    assert get_mapping("nyc311").path == BUILTIN_DIR / "nyc311.toml"
    with pytest.raises(KeyError, match="unknown mapping 'chicago'"):
        get_mapping("chicago")


def test_a_toml_syntax_error_names_its_line():
    err = _broken(NATIVE.replace('title = "title"', 'title = "title'))
    line = NATIVE.splitlines().index('title = "title"') + 1
    assert err.where == f"city.toml line {line}" and "not valid TOML" in err.message


def test_a_misspelt_key_names_its_line_and_key():
    text = NATIVE.replace("in_progress = [", "in_progres = [")
    err = _broken(text)
    line = next(n for n, s in enumerate(text.splitlines(), 1) if s.startswith("in_progres ="))
    assert err.where == f"city.toml line {line}, key status.states.in_progres"
    assert "not a state" in err.message


@pytest.mark.parametrize("old,new,key,line_starts,words", [
    ('label = "category_code"', 'labell = "x"', "category.labell", "labell =", "unknown key"),
    ('crs_column = "crs"', 'crs = "EPSG:999999"', "coordinates.crs", "crs =", "unknown CRS"),
    ('[timestamps]\n', '[timestamps]\ntimezone = "Mars/Olympus"\n', "timestamps.timezone", "timezone =",
     "unknown time zone"),
    ('[timestamps]\n', '[timestamps]\nformats = ["MM/DD/YYYY"]\n', "timestamps.formats", "formats =", "strptime"),
    ('table = "complaint_type"', 'table = "complaint"', "category.table", "table =", "unknown mapping.csv kind"),
    ('default = "12345"', 'unknown = "fax"', "channel.unknown", "unknown =", "Input should be"),
    ('title = "title"\n', '', "fields.title", "[fields]", "is required"),   # missing: the table's line
])
def test_a_schema_error_names_the_line_and_key(old, new, key, line_starts, words):
    text = NATIVE.replace(old, new, 1)
    err = _broken(text)
    assert err.where.endswith(f", key {key}") and words in err.message
    line = int(err.where.split(" line ")[1].split(",")[0])
    assert text.splitlines()[line - 1].startswith(line_starts)


def test_a_status_listed_under_two_states_is_refused():
    text = NATIVE.replace('resolved = ["resolved"]', 'resolved = ["resolved", "Closed"]')
    err = _broken(text)
    line = text.splitlines().index('closed = ["closed", "completed", "complete", "done", "fixed", "closed - resolved"]')
    assert err.where == f"city.toml line {line + 1}, key status.states.closed"
    assert "'closed' is listed under both resolved and closed" in err.message


def test_a_broken_file_is_refused_by_path(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(NATIVE.replace('[category]', '[categroy]'))
    with pytest.raises(MappingError, match=r"bad.toml line \d+, key categroy: unknown key"):
        get_mapping(str(bad))


def test_open311_xml_capitalised_statuses_zoneless_dates_and_nil(sf_ctx):
    names = service_names(FIXTURES / "services.xml")
    assert names == {"SEW": "Sewer Issues", "STC": "Street and Sidewalk Cleaning"}
    records = list(with_service_names(read_records(FIXTURES / "requests.xml"), names))
    assert [line for _, line in records] == [1, 2, 3]
    mapping = MAPPINGS["open311"]
    opened, closed, duplicate = (mapping.to_case(raw, sf_ctx) for raw, _ in records)

    # 'Open', zone-less US date with AM/PM in the pack's zone (PDT = UTC-7); the source's deadline read;
    # open with an agency that maps to a department: dispatched to it (issue 15 item 3)
    assert opened.state == State.DISPATCHED and opened.source_status == "Open"
    assert opened.reported_at == datetime(2012, 5, 22, 23, 24, 7, tzinfo=timezone.utc)
    assert (opened.category_code, opened.department_code, opened.channel) == ("SEWER", "PUC", Channel.APP)
    assert opened.description == "Sewer smell & overflow near the corner"
    assert mapping.source_deadline(records[0][0], sf_ctx) == datetime(2012, 5, 25, 23, 24, tzinfo=timezone.utc)

    # 'CLOSED', service_name from services.xml, xsi:nil coordinates and agency: kept without a location
    assert closed.state == State.CLOSED and closed.category_code == "STREETCLEAN"
    assert closed.closed_at == datetime(2012, 5, 23, 16, 15, tzinfo=timezone.utc)
    assert (closed.lon, closed.lat, closed.location_note) == (None, None, "no coordinates in the source")
    assert closed.address == "" and closed.media_urls == ()
    assert mapping.source_deadline(records[1][0], sf_ctx) is None

    # 'Closed' noted 'Duplicate': voided as a duplicate; the agency named by its full name
    assert (duplicate.state, duplicate.void_reason, duplicate.department_code) == (State.VOIDED, "duplicate", "PUC")


def test_xml_documents_that_are_empty_or_broken():
    assert list(xml_records(b"<service_requests/>")) == []
    (bad, line), = xml_records(b"<service_requests><request>")
    assert "__unreadable__" in bad and "not valid XML" in bad["__unreadable__"]
    bomb = (b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
            + b"".join(b'<!ENTITY %c "%s">' % (ord("b") + i, (b"&%c;" % (ord("a") + i)) * 10) for i in range(8))
            + b']><service_requests><request><description>&i;</description></request></service_requests>')
    (out, _), = xml_records(bomb)
    assert "not valid XML" in out["__unreadable__"]


def test_nyc_legacy_layout_with_am_pm_dates(nyc_ctx):
    """The legacy export (no 'Open Data Channel Type', school/ferry columns) writes 12-hour times."""
    raw = {"Unique Key": "26589651", "Created Date": "10/21/2013 11:52:00 PM", "Closed Date": "10/22/2013 01:09:00 AM",
           "Agency": "NYPD", "Complaint Type": "Noise - Street/Sidewalk", "Descriptor": "Loud Talking",
           "Status": "Closed", "Due Date": "10/22/2013 07:52:00 AM", "Resolution Description": "The Police responded.",
           "Incident Address": "1 WEST STREET", "Borough": "MANHATTAN", "School Name": "Unspecified",
           "Ferry Terminal Name": "", "Latitude": "40.7055", "Longitude": "-74.0161"}
    mapping = MAPPINGS["nyc311"]
    case = mapping.to_case(raw, nyc_ctx)
    assert case.reported_at == datetime(2013, 10, 22, 3, 52, tzinfo=timezone.utc)
    assert case.closed_at == datetime(2013, 10, 22, 5, 9, tzinfo=timezone.utc)
    assert case.channel == Channel.HOTLINE and case.address == "1 WEST STREET, MANHATTAN"
    assert case.title == "Noise - Street/Sidewalk - Loud Talking"
    assert mapping.source_deadline(raw, nyc_ctx) == datetime(2013, 10, 22, 11, 52, tzinfo=timezone.utc)


def test_a_city_s_placeholder_point_is_kept_without_location(tmp_path, sf_ctx):
    city_hall = (-122.4194155, 37.7792808)
    text = (BUILTIN_DIR / "sf311.toml").read_text().replace(
        "placeholders = [[0, 0]]", f"placeholders = [[0, 0], [{city_hall[0]}, {city_hall[1]}]]")
    (tmp_path / "sf-city-hall.toml").write_text(text)
    mapping = load_mapping_file(tmp_path / "sf-city-hall.toml")
    assert mapping.name == "sf-city-hall"
    raw = {"unique_key": "9", "created_date": "2016-07-13 15:11:07+00:00", "status": "Open",
           "agency_name": "PUC Sewer Ops", "category": "Sewer Issues", "longitude": str(city_hall[0]),
           "latitude": str(city_hall[1])}
    case = mapping.to_case(raw, sf_ctx)
    assert (case.lon, case.lat) == (None, None) and "placeholder coordinates -122.419,37.7793" in case.location_note
    assert MAPPINGS["sf311"].to_case(raw, sf_ctx).lon == -122.4194155      # the built-in keeps the point


def test_paths_into_nested_records(sf_ctx):
    raw = {"service_request_id": "X1", "status": "closed", "service_name": "Sewer Issues",
           "requested_datetime": "2014-05-01T10:00:00-05:00", "updated_datetime": "2014-06-01T10:00:00-05:00",
           "extended_attributes": {"channel": "phone"},
           "notes": [{"type": "opened", "datetime": "2014-05-01T10:00:00-05:00"},
                     {"type": "closed", "datetime": "2014-05-03T09:00:00-05:00"},
                     {"type": "closed", "datetime": "2014-05-04T09:00:00-05:00"}]}
    case = MAPPINGS["open311"].to_case(raw, sf_ctx)
    assert case.channel == Channel.HOTLINE
    assert case.closed_at == datetime(2014, 5, 4, 14, 0, tzinfo=timezone.utc)   # the last 'closed' note
    with pytest.raises(Rejected, match="unknown status 'Teleported'"):
        MAPPINGS["open311"].to_case({**raw, "status": "Teleported"}, sf_ctx)


@pytest.mark.parametrize("name", ["native", "nyc311", "open311", "sf311"])
@pytest.mark.parametrize("status,expected", [
    ("Closed (Duplicate)", (State.VOIDED, "duplicate")), ("Cancelled", (State.VOIDED, "invalid")),
    ("Assigned", (State.DISPATCHED, None)), ("Transferred", (State.DISPATCHED, None)),
    ("In Progress", (State.IN_PROGRESS, None)), ("Closed - Resolved", (State.CLOSED, None)),
])
def test_every_built_in_file_reads_the_common_statuses_alike(name, status, expected):
    mapping = MAPPINGS[name]
    assert mapping.status({mapping.spec.status.columns[0]: status})[:2] == expected


def test_the_duplicate_of_column_is_read_where_a_mapping_names_it(tmp_path, sf_ctx):
    text = (BUILTIN_DIR / "sf311.toml").read_text().replace(
        'duplicate_notes = ["duplicate"]', 'duplicate_notes = ["duplicate"]\nduplicate_of = "parent_case"')
    (tmp_path / "sf-dup.toml").write_text(text)
    mapping = load_mapping_file(tmp_path / "sf-dup.toml")
    raw = {"unique_key": "D2", "status": "Closed (Duplicate)", "parent_case": " D1 "}
    assert mapping.status(raw)[:2] == (State.VOIDED, "duplicate") and mapping.duplicate_of(raw) == "D1"
    assert MAPPINGS["sf311"].duplicate_of(raw) is None


def test_state_plane_coordinates_are_projected_by_the_mapping(tmp_path, nyc_ctx):
    """The NYC file's own X/Y (New York State Plane, US feet, "1,017,901") through a mapping that
    declares EPSG:2263 land where the file's Latitude/Longitude say, for every row that has both."""
    text = (BUILTIN_DIR / "nyc311.toml").read_text().replace(
        'lon = "Longitude"\nlat = "Latitude"\ncrs = "WGS84"',
        'lon = "X Coordinate (State Plane)"\nlat = "Y Coordinate (State Plane)"\ncrs = "EPSG:2263"')
    (tmp_path / "nyc-state-plane.toml").write_text(text)
    projected, built_in = load_mapping_file(tmp_path / "nyc-state-plane.toml"), MAPPINGS["nyc311"]
    assert projected.spec.coordinates.crs == "EPSG:2263" and projected.crs is None
    compared, worst = 0, 0.0
    for raw, _ in read_records(SHARED_DATA / "nyc311_2018-10-21_fullday.csv"):
        if not raw["X Coordinate (State Plane)"] or not raw["Latitude"]:
            continue
        a, b = projected.to_case(raw, nyc_ctx), built_in.to_case(raw, nyc_ctx)
        worst = max(worst, abs(a.lon - b.lon), abs(a.lat - b.lat))
        compared += 1
    assert compared > 6500 and worst < 2e-6       # degrees: about 20 cm

"""Photos and links on a case (issue 14 item 4), through the REST API, Open311 and the workbench's
command, on SQLite and PostgreSQL: the bytes decide the type, limits hold, EXIF (GPS) is gone from
what is stored, nothing is half-written, and only those who may see the case get the file."""
from __future__ import annotations

import io
from datetime import datetime, timezone
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import func, select

from data_sources.store.db import get_db
from data_sources.store.media import get_media_store
from incidents import commands
from incidents.media import MediaTooLarge, UnsupportedMedia
from incidents.services import Actor
from incidents.model import Role
from incidents.tables import CaseAttachment, IncidentEvent
from tests.conftest import BACKENDS, build_app, database_url
from tests.integration.helpers import WEST_LAKE, login

GPS_IFD = 0x8825
ORIENTATION = 0x0112
DEPT = "HZ-CGJ"


@pytest.fixture(scope="module", params=BACKENDS)
def server(request, tmp_path_factory):
    app = build_app(database_url(request.param, tmp_path_factory.mktemp(request.param)),
                    MEDIA_MAX_BYTES=200_000, MEDIA_MAX_PIXELS=4_000_000)
    yield app.server
    get_db(app.server).dispose()


def jpeg_with_gps(size=(64, 32), *, orientation: int | None = None) -> bytes:
    """A JPEG carrying a GPS position (West Lake), a camera make and, optionally, an orientation."""
    im = Image.new("RGB", size, (200, 30, 30))
    im.paste((30, 30, 200), (0, 0, size[0] // 2, size[1]))     # left half blue: orientation shows
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"                                # Make
    exif[0x0131] = "Camera 1.0"                                # Software
    if orientation:
        exif[ORIENTATION] = orientation
    gps = exif.get_ifd(GPS_IFD)
    gps.update({1: "N", 2: (30.0, 15.0, 30.6), 3: "E", 4: (120.0, 9.0, 33.5)})
    out = io.BytesIO()
    im.save(out, "JPEG", exif=exif, quality=90)
    return out.getvalue()


def png_bytes(size=(40, 40), mode="RGBA") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, (0, 128, 0, 128) if mode == "RGBA" else (0, 128, 0)).save(out, "PNG")
    return out.getvalue()


def media_files(server) -> list[Path]:
    root = get_media_store(server).root
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def attachment_count(server) -> int:
    with get_db(server).session_scope() as s:
        return s.scalar(select(func.count()).select_from(CaseAttachment))


def create(client, ext: str, *, photos=(), data=None, content_type=None):
    fields = {"external_id": ext, "channel": "app", "title": "井盖缺失", "category_code": "C0101",
              "lon": str(WEST_LAKE[0]), "lat": str(WEST_LAKE[1]), **(data or {})}
    fields["photo"] = [(io.BytesIO(b), name) + ((content_type,) if content_type else ()) for name, b in photos]
    return client.post("/api/v1/incidents", data=fields, content_type="multipart/form-data")


def act(client, case_id: int, action: str, version: int, *, photos=(), **fields):
    data = {"action": action, "version": str(version), **fields,
            "photo": [(io.BytesIO(b), name) for name, b in photos]}
    return client.post(f"/api/v1/incidents/{case_id}/actions", data=data, content_type="multipart/form-data")


def to_resolved(server, ext: str, dept: str = DEPT):
    """A case created with a report photo by an inspector, registered and dispatched to ``dept``, signed;
    answers (clients, case id, version)."""
    insp = login(server, "ph-insp", "inspector")
    disp = login(server, "ph-disp", "dispatcher")
    dep = login(server, f"ph-dep-{dept}", "department", dept)
    r = create(insp, ext, photos=[("before.jpg", jpeg_with_gps())])
    assert r.status_code == 201, r.get_json()
    case = r.get_json()
    v = case["version"]
    for who, action, extra in ((disp, "register", {}), (disp, "dispatch", {"department": dept}), (dep, "sign", {})):
        r = who.post(f"/api/v1/incidents/{case['id']}/actions", json={"action": action, "version": v, **extra})
        assert r.status_code == 200, r.get_json()
        v = r.get_json()["version"]
    return {"insp": insp, "disp": disp, "dep": dep}, case["id"], v


def test_a_photo_with_gps_exif_is_stored_without_any_exif_upright_and_with_a_thumbnail(server):
    client = login(server, "ph-creator", "inspector")
    before = set(media_files(server))
    r = create(client, "gps-1", photos=[("IMG_0001.JPG", jpeg_with_gps((64, 32), orientation=6))])
    assert r.status_code == 201, r.get_json()
    [att] = r.get_json()["attachments"]
    assert att["stage"] == "report" and att["kind"] == "photo" and att["mime"] == "image/jpeg"
    assert att["name"] == "IMG_0001.JPG"
    # orientation 6 (rotate 90° clockwise) was applied before the EXIF went: 64×32 becomes 32×64
    assert (att["width"], att["height"]) == (32, 64)

    body = client.get(att["url"])
    assert body.status_code == 200 and body.mimetype == "image/jpeg"
    assert "private" in body.headers["Cache-Control"]
    stored = Image.open(io.BytesIO(body.data))
    assert stored.format == "JPEG" and stored.size == (32, 64)
    exif = stored.getexif()
    assert len(exif) == 0 and GPS_IFD not in exif and not exif.get_ifd(GPS_IFD)
    assert "exif" not in stored.info and "icc_profile" not in stored.info
    # the blue half, on the left before the rotation, is on top after it
    r_, g_, b_ = stored.convert("RGB").getpixel((16, 5))
    assert b_ > 150 and r_ < 100

    thumb = client.get(att["thumbnail_url"])
    assert thumb.status_code == 200 and Image.open(io.BytesIO(thumb.data)).getexif() == {}
    # two new files (photo and thumbnail), named at random: never the client's file name
    new = set(media_files(server)) - before
    assert len(new) == 2 and not any("IMG_0001" in p.name for p in new)
    for p in new:
        assert len(Image.open(p).getexif()) == 0


def test_a_forged_type_is_refused_with_415_and_leaves_no_row_and_no_file(server):
    client = login(server, "ph-forger", "inspector")
    files, rows = media_files(server), attachment_count(server)
    script = b"<?php system($_GET['c']); ?>" + b"\0" * 64
    r = create(client, "forged-1", photos=[("photo.jpg", script)], content_type="image/jpeg")
    assert r.status_code == 415, r.get_json()
    assert r.get_json()["error"]["code"] == "unsupported_media_type"
    # a real image of another format (GIF) named .jpg is refused too: the bytes decide
    gif = io.BytesIO()
    Image.new("RGB", (8, 8)).save(gif, "GIF")
    r = create(client, "forged-2", photos=[("photo.jpg", gif.getvalue())], content_type="image/jpeg")
    assert r.status_code == 415
    assert media_files(server) == files and attachment_count(server) == rows
    assert client.get("/api/v1/incidents?q=井盖缺失").get_json()["total"] == 0 or all(
        i["external_id"] not in ("forged-1", "forged-2")
        for i in client.get("/api/v1/incidents?q=井盖缺失&per_page=200").get_json()["items"])


def test_an_oversized_photo_and_a_decompression_bomb_are_refused_with_413(server):
    client = login(server, "ph-big", "inspector")
    files, rows = media_files(server), attachment_count(server)
    big = jpeg_with_gps() + b"\0" * 250_000          # over MEDIA_MAX_BYTES (200 000) of this app
    r = create(client, "big-1", photos=[("big.jpg", big)])
    assert r.status_code == 413 and r.get_json()["error"]["code"] == "too_large"
    # 3000×3000 = 9 M pixels > MEDIA_MAX_PIXELS (4 M), yet a small PNG: refused before decoding
    bomb = io.BytesIO()
    Image.new("L", (3000, 3000)).save(bomb, "PNG", optimize=True)
    assert len(bomb.getvalue()) < 200_000
    r = create(client, "bomb-1", photos=[("bomb.png", bomb.getvalue())])
    assert r.status_code == 413 and "pixels" in r.get_json()["error"]["message"]
    assert media_files(server) == files and attachment_count(server) == rows


def test_a_second_bad_photo_refuses_the_first_too(server):
    client = login(server, "ph-two", "inspector")
    files, rows = media_files(server), attachment_count(server)
    r = create(client, "two-1", photos=[("ok.jpg", jpeg_with_gps()), ("bad.jpg", b"not an image")])
    assert r.status_code == 415
    assert media_files(server) == files and attachment_count(server) == rows


def test_a_failed_transaction_removes_the_files_it_wrote(server):
    client = login(server, "ph-dup", "inspector")
    assert create(client, "dup-1").status_code == 201
    files, rows = media_files(server), attachment_count(server)
    r = create(client, "dup-1", photos=[("p.jpg", jpeg_with_gps())])   # (source, external_id) exists: 409
    assert r.status_code == 409
    assert media_files(server) == files and attachment_count(server) == rows


def test_png_with_transparency_becomes_webp(server):
    client = login(server, "ph-png", "inspector")
    r = create(client, "png-1", photos=[("sign.png", png_bytes())])
    assert r.status_code == 201
    [att] = r.get_json()["attachments"]
    assert att["mime"] == "image/webp"
    stored = Image.open(io.BytesIO(client.get(att["url"]).data))
    assert stored.format == "WEBP" and stored.mode == "RGBA"


def test_resolve_and_verify_photos_carry_their_stage_and_event(server):
    who, case_id, v = to_resolved(server, "stage-1")
    r = act(who["dep"], case_id, "resolve", v, note="已修复", photos=[("after.jpg", jpeg_with_gps())],
            media_urls="https://photos.example.org/after-2.jpg")
    assert r.status_code == 200, r.get_json()
    r = act(who["insp"], case_id, "verify_pass", r.get_json()["version"], photos=[("check.png", png_bytes(mode="RGB"))])
    assert r.status_code == 200, r.get_json()
    detail = who["disp"].get(f"/api/v1/incidents/{case_id}").get_json()
    stages = [(a["stage"], a["kind"]) for a in detail["attachments"]]
    assert stages == [("report", "photo"), ("resolve", "photo"), ("resolve", "link"), ("verify", "photo")]
    link = detail["attachments"][2]
    assert link["url"] == "https://photos.example.org/after-2.jpg" and link["thumbnail_url"] is None
    events = {e["id"]: e for e in detail["timeline"]}
    resolve_event = events[detail["attachments"][1]["event_id"]]
    assert resolve_event["action"] == "resolve" and resolve_event["payload"]["photos"] == 1
    assert resolve_event["payload"]["links"] == 1
    assert events[detail["attachments"][3]["event_id"]]["action"] == "verify_pass"
    # a link is no stored file
    assert who["disp"].get(f"/api/v1/incidents/{case_id}/attachments/{link['id']}/file").status_code == 404


def test_photos_come_only_with_resolve_and_verification(server):
    who, case_id, v = to_resolved(server, "stage-2")
    files = media_files(server)
    r = act(who["dep"], case_id, "extend", v, hours="4", photos=[("x.jpg", jpeg_with_gps())])
    assert r.status_code == 422 and "photo" in r.get_json()["error"]["message"]
    assert media_files(server) == files


def test_only_roles_that_may_see_the_case_get_its_photo(server):
    who, case_id, _ = to_resolved(server, "perm-1")
    att = who["disp"].get(f"/api/v1/incidents/{case_id}").get_json()["attachments"][0]
    assert who["dep"].get(att["url"]).status_code == 200          # its own department's case
    other = login(server, "ph-other-dept", "department", "HZ-ZJJ")
    # another department's case does not exist for it: its photos answer as its detail does, 404
    assert other.get(f"/api/v1/incidents/{case_id}").status_code == 404
    r = other.get(att["url"])
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "not_found"
    assert other.get(att["thumbnail_url"]).status_code == 404
    # a viewer sees the case (without personal data) and that it has photos, not the photos: 403
    viewer = login(server, "ph-viewer", "viewer")
    seen = viewer.get(f"/api/v1/incidents/{case_id}")
    assert seen.status_code == 200 and len(seen.get_json()["attachments"]) == 1
    r = viewer.get(att["url"])
    assert r.status_code == 403 and r.get_json()["error"]["code"] == "forbidden"
    assert who["disp"].get(att["thumbnail_url"]).status_code == 200
    assert server.test_client().get(att["url"]).status_code == 401
    # a crafted path: this attachment under another case's id
    who, other_case, _ = to_resolved(server, "perm-2")     # (its logins replace the first ones)
    assert who["disp"].get(f"/api/v1/incidents/{other_case}/attachments/{att['id']}/file").status_code == 404


def test_a_url_reference_is_kept_as_a_link_and_never_fetched(server):
    client = login(server, "ph-url", "inspector")
    r = client.post("/api/v1/incidents", json={"external_id": "url-1", "channel": "app", "title": "路灯不亮",
                                               "category_code": "C0101",
                                               "media_urls": ["https://img.example.org/a.jpg"]})
    assert r.status_code == 201, r.get_json()
    [att] = r.get_json()["attachments"]
    assert att["kind"] == "link" and att["url"] == "https://img.example.org/a.jpg" and att["size"] is None
    r = client.post("/api/v1/incidents", json={"external_id": "url-2", "channel": "app", "title": "路灯不亮",
                                               "media_urls": ["file:///etc/passwd"]})
    assert r.status_code == 422 and r.get_json()["error"]["field"] == "media_url"


def test_open311_media_url_and_media_file(server):
    from tests.integration.test_open311 import token_for
    key = token_for(server, "ph-o311")
    client = server.test_client()
    r = client.post("/open311/v2/requests.json", data={
        "api_key": key, "service_code": "C0101", "lat": "30.25", "long": "120.15", "description": "路面塌陷",
        "media_url": "https://citizen.example.org/p.jpg"})
    assert r.status_code == 201, r.data
    rid = r.get_json()[0]["service_request_id"]
    [req] = client.get(f"/open311/v2/requests/{rid}.json").get_json()
    assert req["media_url"] == "https://citizen.example.org/p.jpg"
    assert req["media_urls"] == ["https://citizen.example.org/p.jpg"]

    r = client.post("/open311/v2/requests.xml", data={
        "api_key": key, "service_code": "C0101", "lat": "30.25", "long": "120.15", "description": "井盖",
        "media": (io.BytesIO(jpeg_with_gps()), "citizen.jpg")}, content_type="multipart/form-data")
    assert r.status_code == 201, r.data
    rid = r.data.decode().split("<service_request_id>")[1].split("<")[0]
    [req] = client.get(f"/open311/v2/requests/{rid}.json").get_json()
    assert req["media_url"].startswith("http://localhost/api/v1/incidents/") and req["media_url"].endswith("/file")
    xml = client.get(f"/open311/v2/requests/{rid}.xml").data.decode()
    assert "<media_urls><media_url>http://localhost/api/v1/incidents/" in xml
    # the public cannot open it; a dispatcher can, and it carries no EXIF
    path = req["media_url"].removeprefix("http://localhost")
    assert client.get(path).status_code == 401
    disp = login(server, "ph-o311-disp", "dispatcher")
    assert Image.open(io.BytesIO(disp.get(path).data)).getexif() == {}

    files = media_files(server)
    r = client.post("/open311/v2/requests.json", data={
        "api_key": key, "service_code": "C0101", "lat": "30.25", "long": "120.15",
        "media": (io.BytesIO(b"%PDF-1.7 not a photo"), "scan.jpg")}, content_type="multipart/form-data")
    assert r.status_code == 415 and r.get_json()[0]["code"] == 415
    assert media_files(server) == files


def test_the_workbench_command_attaches_resolve_photos(server):
    """commands.act is what the case panel's 确认 calls with the dcc.Upload's files."""
    who, case_id, v = to_resolved(server, "wb-1")   # (requests outside the app context below: its g is shared)
    with server.app_context():
        done = commands.act(Actor(f"ph-dep-{DEPT}", Role.DEPARTMENT, DEPT), case_id, "resolve", version=v,
                            now=datetime.now(timezone.utc), note="现场已清理",
                            photos=[("after.jpg", jpeg_with_gps(orientation=3))])
        assert done.state == "resolved"
        files = media_files(server)
        with pytest.raises(UnsupportedMedia):
            commands.act(Actor("ph-insp", Role.INSPECTOR), case_id, "verify_pass", version=done.version,
                         now=datetime.now(timezone.utc), photos=[("x.jpg", b"GIF89a....")])
        with pytest.raises(MediaTooLarge):
            commands.act(Actor("ph-insp", Role.INSPECTOR), case_id, "verify_pass", version=done.version,
                         now=datetime.now(timezone.utc), photos=[("x.jpg", b"\xff" * 300_000)])
        assert media_files(server) == files
    with get_db(server).session_scope() as s:
        rows = s.scalars(select(CaseAttachment).where(CaseAttachment.incident_id == case_id)
                         .order_by(CaseAttachment.id)).all()
        assert [r.stage for r in rows] == ["report", "resolve"]
        event = s.get(IncidentEvent, rows[1].event_id)
        assert event.action == "resolve" and event.actor == f"ph-dep-{DEPT}"
        stored = Image.open(get_media_store(server).path(rows[1].storage_key))
        assert len(stored.getexif()) == 0


def test_openapi_documents_multipart_photos_and_the_file_routes(server):
    client = login(server, "ph-doc", "dispatcher")
    doc = client.get("/api/v1/openapi.json").get_json()
    create_body = doc["paths"]["/api/v1/incidents"]["post"]["requestBody"]["content"]
    assert "photo" in create_body["multipart/form-data"]["schema"]["properties"]
    assert "multipart/form-data" in doc["paths"]["/api/v1/incidents/{incident_id}/actions"]["post"]["requestBody"]["content"]
    file_op = doc["paths"]["/api/v1/incidents/{incident_id}/attachments/{attachment_id}/file"]["get"]
    assert "image/jpeg" in file_op["responses"]["200"]["content"] and "403" in file_op["responses"]
    assert "attachments" in doc["components"]["schemas"]["IncidentDetail"]["properties"]
    assert "media_urls" in doc["components"]["schemas"]["IncidentCreate"]["properties"]


def test_pushed_records_bring_photo_urls_as_links_and_a_bad_url_is_quarantined(server):
    from tests.integration.helpers import push_record
    client = login(server, "ph-pusher", "dispatcher")
    r = client.post("/api/v1/feeds/ph-feed/records", json=[
        push_record("ph-push-1", reported_at="2026-11-18T09:00:00+08:00",
                    media_urls=["https://cams.example.org/1.jpg", "https://cams.example.org/2.jpg"]),
        push_record("ph-push-2", reported_at="2026-11-18T09:00:00+08:00", media_url="javascript:alert(1)"),
        push_record("ph-push-3", reported_at="2026-11-18T09:00:00+08:00")])
    body = r.get_json()
    assert r.status_code == 200 and body["inserted"] == 2 and body["quarantined"] == 1, body
    assert "media_url" in body["quarantined_records"][0]["reason"]
    [case] = client.get("/api/v1/incidents?q=ph-push-1").get_json()["items"]
    detail = client.get(f"/api/v1/incidents/{case['id']}").get_json()
    assert [(a["stage"], a["kind"], a["url"]) for a in detail["attachments"]] == [
        ("report", "link", "https://cams.example.org/1.jpg"), ("report", "link", "https://cams.example.org/2.jpg")]
    report = detail["timeline"][0]
    assert report["action"] == "report" and report["payload"]["links"] == 2
    assert detail["attachments"][0]["event_id"] == report["id"]

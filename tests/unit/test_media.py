"""incidents.media without a database: what a photo is comes from its bytes, limits hold, EXIF is
gone after re-encoding, orientation is applied first, links are http(s) only and never fetched."""
from __future__ import annotations

import io

import pytest
from PIL import Image

from incidents.lifecycle import ValidationFailed
from incidents.media import MediaTooLarge, UnsupportedMedia, display_name, prepare_link, prepare_photo

GPS_IFD = 0x8825


def _jpeg(size=(40, 20), *, orientation=None, mode="RGB", fmt="JPEG") -> bytes:
    im = Image.new(mode, size, (10, 200, 10) if mode == "RGB" else None)
    exif = Image.Exif()
    exif[0x010F] = "Maker"
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (30.0, 1.0, 2.0)})
    if orientation:
        exif[0x0112] = orientation
    out = io.BytesIO()
    im.save(out, fmt, exif=exif)
    return out.getvalue()


def test_a_jpeg_is_re_encoded_without_exif_and_upright():
    photo = prepare_photo(_jpeg((40, 20), orientation=8), "a.jpg")
    assert (photo.width, photo.height) == (20, 40) and photo.mime == "image/jpeg"
    back = Image.open(io.BytesIO(photo.data))
    assert len(back.getexif()) == 0 and back.size == (20, 40)
    assert max(Image.open(io.BytesIO(photo.thumb)).size) <= 360


def test_a_webp_with_exif_is_cleaned_too():
    photo = prepare_photo(_jpeg(fmt="WEBP"), "a.webp")
    assert len(Image.open(io.BytesIO(photo.data)).getexif()) == 0


def test_a_large_photo_is_scaled_to_the_longest_side():
    out = io.BytesIO()
    Image.new("RGB", (4000, 1000)).save(out, "JPEG")
    photo = prepare_photo(out.getvalue(), max_pixels=10_000_000)
    assert (photo.width, photo.height) == (2560, 640)


@pytest.mark.parametrize("data", [b"", b"hello", b"%PDF-1.4\n", b"GIF89a" + b"\0" * 40])
def test_what_is_no_accepted_image_is_refused(data):
    with pytest.raises((UnsupportedMedia, ValidationFailed)):
        prepare_photo(data, "x.jpg")


def test_a_truncated_jpeg_is_refused_as_damaged():
    with pytest.raises(ValidationFailed, match="damaged"):
        prepare_photo(_jpeg((200, 200))[:300], "cut.jpg")


def test_size_and_pixel_limits():
    with pytest.raises(MediaTooLarge):
        prepare_photo(_jpeg(), max_bytes=100)
    with pytest.raises(MediaTooLarge, match="pixels"):
        prepare_photo(_jpeg((100, 100)), max_pixels=9_999)


def test_links_are_http_only_and_names_are_display_text():
    assert prepare_link("https://x.example/p.jpg").url == "https://x.example/p.jpg"
    for bad in ("javascript:alert(1)", "file:///etc/passwd", "http://", "ftp://x/y", "https://a b/"):
        with pytest.raises(ValidationFailed):
            prepare_link(bad)
    assert display_name("../../etc/passwd") == "passwd"
    assert display_name("C:\\Users\\me\\IMG_1.JPG") == "IMG_1.JPG"
    assert display_name('<img src=x>"') == "img src=x"

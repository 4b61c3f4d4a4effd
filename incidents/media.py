"""Photos and links attached to a case (issue 14 item 4): what a door hands in, checked and made safe.

A photo is judged by its bytes, never by its file name or the client's Content-Type: Pillow is
asked which of the accepted formats (JPEG, PNG, WebP) the bytes are, and anything else is refused.
The pixel count is read from the header before any pixel is decoded, so a decompression bomb (a
few kB that expand to gigabytes) is refused without being decoded. An accepted photo is turned
upright by its EXIF orientation, then re-encoded from its pixels alone: the EXIF block (GPS
position, camera serial, time), XMP, comments and every other metadata chunk stay behind, which
is the point — a citizen's photo must not tell where they live. Photos without transparency become
JPEG, photos with it WebP; a thumbnail is made beside it. Long sides over ``MAX_SIDE`` are scaled
down (a phone's 50 MP photo is no better evidence at 8 000 px than at 2 560).

A link (URL reference) is a client's photo kept elsewhere: only its URL is kept, the server never
fetches it (command centres run on closed networks, and fetching arbitrary URLs would let anyone
make the server call inside addresses).

Pure: Pillow and the standard library; storing the bytes is the caller's (``incidents.commands``
through ``data_sources.store.media``).
"""
from __future__ import annotations

import hashlib
import io
import re
import warnings
from dataclasses import dataclass, field
from typing import Optional
from urllib.parse import urlparse

from PIL import Image, ImageOps, UnidentifiedImageError
# the plugins of the accepted formats, registered by importing them (Image.open's ``formats`` names
# only registered ones; Pillow registers only some before its first full init)
from PIL import JpegImagePlugin, MpoImagePlugin, PngImagePlugin, WebPImagePlugin  # noqa: F401

from incidents.lifecycle import DomainError, ValidationFailed
from incidents.model import Action, MediaStage

#: formats accepted, as Pillow names them (the JPEG plugin also opens MPO, the JPEG variant many phones write)
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP")
#: the longest side kept; larger photos are scaled down
MAX_SIDE = 2560
#: the thumbnail's longest side
THUMB_SIDE = 360
JPEG_QUALITY = 85
THUMB_QUALITY = 80
#: default limits (the app's MEDIA_MAX_BYTES, MEDIA_MAX_PIXELS override them)
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_PIXELS = 50_000_000
#: photos and links one action (or one new case) may bring
MAX_PER_ACTION = 6
MAX_URL = 500
MAX_NAME = 120

#: the stage of the photos that come with an action; other actions take none
STAGE_OF_ACTION: dict[Action, MediaStage] = {Action.RESOLVE: MediaStage.RESOLVE,
                                             Action.VERIFY_PASS: MediaStage.VERIFY,
                                             Action.VERIFY_FAIL: MediaStage.VERIFY}


class UnsupportedMedia(DomainError):
    """Not an image of an accepted format (HTTP 415)."""
    code = "unsupported_media_type"


class MediaTooLarge(DomainError):
    """Over the size or pixel limit (HTTP 413)."""
    code = "too_large"


@dataclass
class Attachment:
    """One photo or link as the services record it. A photo arrives here with its bytes
    (``data``, ``thumb``); the store gives it ``storage_key`` / ``thumb_key`` before the
    transaction, and the services set ``attachment_id`` when its row is written."""

    kind: str                       # photo | link
    mime: str = ""
    name: str = ""                  # the client's file name, as display text only (never a path)
    url: Optional[str] = None       # link: the URL
    data: bytes = field(default=b"", repr=False)
    thumb: bytes = field(default=b"", repr=False)
    ext: str = ""
    width: Optional[int] = None
    height: Optional[int] = None
    size: int = 0
    sha256: Optional[str] = None
    storage_key: Optional[str] = None
    thumb_key: Optional[str] = None
    attachment_id: Optional[int] = None

    @property
    def thumb_mime(self) -> str:
        return self.mime


def display_name(name: Optional[str]) -> str:
    """A client's file name as harmless display text: its last path part, control characters out."""
    name = re.split(r"[\\/]", str(name or ""))[-1]
    name = re.sub(r"[\x00-\x1f\x7f<>\"]", "", name).strip()
    return name[:MAX_NAME]


def _limit_text(n: int) -> str:
    return f"{n / 1024 / 1024:.0f} MB" if n >= 1024 * 1024 else f"{n:,} bytes"


def prepare_photo(data: bytes, name: str = "", *, max_bytes: int = DEFAULT_MAX_BYTES,
                  max_pixels: int = DEFAULT_MAX_PIXELS) -> Attachment:
    """Check ``data`` and re-encode it without its metadata: a photo with its thumbnail, or
    :class:`UnsupportedMedia` (415), :class:`MediaTooLarge` (413), :class:`ValidationFailed` (422)."""
    label = display_name(name) or "photo"
    if not data:
        raise ValidationFailed(f"{label}: the file is empty", field="photo")
    if len(data) > max_bytes:
        raise MediaTooLarge(f"{label}: {len(data):,} bytes is over the limit of {_limit_text(max_bytes)} per photo")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except UnidentifiedImageError:
        raise UnsupportedMedia(f"{label}: not a JPEG, PNG or WebP image (the content was checked, "
                               f"not the file name or type)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise MediaTooLarge(f"{label}: too many pixels (over {max_pixels:,})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:   # a known format, cut short or broken
        raise ValidationFailed(f"{label}: the image is damaged or truncated ({exc})", field="photo") from None
    with im:
        width, height = im.size
        if width * height > max_pixels:        # read from the header: nothing decoded yet
            raise MediaTooLarge(f"{label}: {width}×{height} pixels is over the limit of {max_pixels:,}")
        try:
            im.seek(0)                          # an animation: its first frame
            im.load()
            upright = ImageOps.exif_transpose(im) or im
            photo = _pixels_only(upright)
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ValidationFailed(f"{label}: the image is damaged or truncated ({exc})", field="photo") from None
    photo.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    alpha = photo.mode == "RGBA"
    mime, ext = ("image/webp", "webp") if alpha else ("image/jpeg", "jpg")
    body = _encode(photo, alpha, JPEG_QUALITY)
    small = photo.copy()
    small.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS)
    thumb = _encode(small, alpha, THUMB_QUALITY)
    return Attachment(kind="photo", mime=mime, ext=ext, name=display_name(name), data=body, thumb=thumb,
                      width=photo.width, height=photo.height, size=len(body),
                      sha256=hashlib.sha256(body).hexdigest())


def _pixels_only(im: Image.Image) -> Image.Image:
    """A new image holding ``im``'s pixels only (RGB, or RGBA when it has transparency), in sRGB
    when it carried another colour profile; no EXIF, XMP, ICC or text chunks come along."""
    icc = im.info.get("icc_profile")
    has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
    rgb = im.convert("RGBA" if has_alpha else "RGB")
    if icc:
        try:
            from PIL import ImageCms
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            rgb = ImageCms.profileToProfile(rgb, src, ImageCms.createProfile("sRGB"), outputMode=rgb.mode) or rgb
        except Exception:   # a broken or unusual profile: keep the pixels as they are
            pass
    clean = Image.new(rgb.mode, rgb.size)
    clean.paste(rgb)
    clean.info = {}
    return clean


def _encode(im: Image.Image, alpha: bool, quality: int) -> bytes:
    out = io.BytesIO()
    if alpha:
        im.save(out, "WEBP", quality=quality, method=4)
    else:
        im.save(out, "JPEG", quality=quality, optimize=True, progressive=True)
    return out.getvalue()


def prepare_link(url: Optional[str], name: str = "") -> Attachment:
    """A URL reference: http(s) with a host, at most ``MAX_URL`` characters; never fetched."""
    url = str(url or "").strip()
    if not url:
        raise ValidationFailed("media_url is empty", field="media_url")
    if len(url) > MAX_URL:
        raise ValidationFailed(f"media_url is longer than {MAX_URL} characters", field="media_url")
    parts = urlparse(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or re.search(r"[\s\x00-\x1f\x7f]", url):
        raise ValidationFailed("media_url must be an http(s) URL", field="media_url")
    return Attachment(kind="link", url=url, name=display_name(name) or display_name(parts.path) or parts.netloc)


def check_count(items: list) -> None:
    if len(items) > MAX_PER_ACTION:
        raise ValidationFailed(f"at most {MAX_PER_ACTION} photos or links at a time ({len(items)} given)",
                               field="photo")


__all__ = ["ACCEPTED_FORMATS", "Attachment", "MAX_PER_ACTION", "MediaTooLarge", "STAGE_OF_ACTION",
           "UnsupportedMedia", "check_count", "display_name", "prepare_link", "prepare_photo"]


#: where the API serves a stored photo (``file``) and its thumbnail (``thumbnail``)
FILE_PATH = "/api/v1/incidents/{incident_id}/attachments/{attachment_id}/{variant}"


def file_path(incident_id: int, attachment_id: int, variant: str = "file") -> str:
    return FILE_PATH.format(incident_id=int(incident_id), attachment_id=int(attachment_id), variant=variant)

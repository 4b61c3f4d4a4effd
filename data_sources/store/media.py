"""The media store: the files of the photos attached to cases, under one folder (``MEDIA_DIR``,
default ``instance/media``). Plumbing: bytes in, a key out; it knows nothing of cases.

Keys are random (``ab/<32 hex>.jpg``), never a client's file name, and every key is checked
against that shape before it becomes a path, so no key can reach outside the folder. A file is
written under a temporary name and renamed into place (readers never see half a file). Every
host that serves the app needs the same folder (a shared volume when there are several nodes).
"""
from __future__ import annotations

import os
import re
import secrets
from pathlib import Path
from typing import Optional

EXTENSION_KEY = "cityops.media"
_KEY = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{32}(?:\.t)?\.(?:jpg|webp)$")
_SUFFIX = re.compile(r"^(?:\.t)?\.(?:jpg|webp)$")


class MediaStore:
    def __init__(self, root: str | os.PathLike, *, max_bytes: int, max_pixels: int) -> None:
        self.root = Path(root)
        self.max_bytes = int(max_bytes)        # a photo's upload limit (the doors check it)
        self.max_pixels = int(max_pixels)      # a photo's pixel limit (decompression bombs)

    def put(self, data: bytes, suffix: str, *, stem: Optional[str] = None) -> str:
        """Write ``data`` under a new random key ending in ``suffix`` (``.jpg``, ``.t.webp`` …);
        ``stem``: the random part of a sibling's key (a photo and its thumbnail share it)."""
        if not _SUFFIX.match(suffix):
            raise ValueError(f"unsupported suffix {suffix!r}")
        stem = stem or secrets.token_hex(16)
        key = f"{stem[:2]}/{stem}{suffix}"
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            with open(tmp, "xb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return key

    def path(self, key: str) -> Path:
        """The file of ``key``; a key of any other shape is refused (no path from outside)."""
        if not isinstance(key, str) or not _KEY.match(key):
            raise ValueError("not a media key")
        return self.root / key

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete(self, key: Optional[str]) -> None:
        if key:
            self.path(key).unlink(missing_ok=True)


def init_app(server, root: str | os.PathLike, *, max_bytes: int, max_pixels: int) -> MediaStore:
    store = MediaStore(root, max_bytes=max_bytes, max_pixels=max_pixels)
    server.extensions[EXTENSION_KEY] = store
    return store


def get_media_store(app=None) -> MediaStore:
    if app is None:
        from flask import current_app
        app = current_app
    return app.extensions[EXTENSION_KEY]


__all__ = ["MediaStore", "get_media_store", "init_app"]

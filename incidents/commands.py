"""Writes for Dash callbacks: one use case of ``incidents.services`` in its own transaction.
Pages open no sessions; they call these, which commit at the boundary (DESIGN §2, §10)."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Iterator, Optional, Sequence

from data_sources.store.db import session_scope
from data_sources.store.media import get_media_store
from incidents import media, services
from incidents.queries.reference import case_rules


@dataclass(frozen=True)
class Done:
    """What an action did, as plain values (the session is gone when the page reads it)."""

    state: str
    version: int
    request_id: Optional[int] = None       # the request filed (pending) or decided, if any
    request_kind: Optional[str] = None     # extend | suspend
    request_status: Optional[str] = None   # pending | approved | rejected


def act(actor: services.Actor, incident_id: int, action: str, *, now: datetime,
        photos: Sequence[tuple[str, bytes]] = (), **fields) -> Done:
    """One ``services.act``: the case's new state and version, and the request it filed or decided.
    ``photos``: (file name, bytes) uploaded with a resolve or a verification, checked and re-encoded
    (``incidents.media``) before the transaction opens."""
    items = prepare_photos(photos)
    with stored(items) as attachments, session_scope() as s:
        out = services.act(s, case_rules(), actor, int(incident_id), action, now=now,
                           attachments=attachments, **fields)
        req = out.request
        return Done(out.case.state, out.case.version, req.id if req else None, req.kind if req else None,
                    req.status if req else None)


def close_children(actor: services.Actor, parent_id: int, *, reason: str, now: datetime) -> tuple[list[int], dict[int, str]]:
    """A closed parent's open repeats closed with it (services.close_children), in one transaction."""
    with session_scope() as s:
        return services.close_children(s, case_rules(), actor, int(parent_id), reason=reason, now=now)


def acknowledge_alarm(actor: services.Actor, key: str, *, now: datetime) -> bool:
    with session_scope() as s:
        return services.acknowledge_alarm(s, actor, key, now)


def prepare_photos(photos: Sequence[tuple[str, bytes]]) -> list[media.Attachment]:
    """Each uploaded photo checked and re-encoded without its metadata, within the store's limits;
    the first bad one refuses them all (UnsupportedMedia, MediaTooLarge, ValidationFailed)."""
    media.check_count(list(photos))
    store = get_media_store()
    return [media.prepare_photo(data, name, max_bytes=store.max_bytes, max_pixels=store.max_pixels)
            for name, data in photos]


@contextmanager
def stored(items: Sequence[media.Attachment]) -> Iterator[list[media.Attachment]]:
    """Write the photos' files into the media store and yield the attachments for the services.
    Wrap the transaction in it: when the block fails (or a retried request records nothing), the
    files written here are removed again, so no file is left without its row."""
    store = get_media_store()
    items = list(items)
    written: list[str] = []
    try:
        for a in items:
            if a.kind != "photo" or a.storage_key:
                continue
            a.storage_key = store.put(a.data, f".{a.ext}")
            written.append(a.storage_key)
            a.thumb_key = store.put(a.thumb, f".t.{a.ext}", stem=a.storage_key.split("/")[1].split(".")[0])
            written.append(a.thumb_key)
        yield items
    except BaseException:
        for key in written:
            store.delete(key)
        raise
    for a in items:
        if a.kind == "photo" and a.attachment_id is None:
            store.delete(a.storage_key)
            store.delete(a.thumb_key)

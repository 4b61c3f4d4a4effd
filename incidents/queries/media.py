"""Read model of a case's photos and links (incidents.media): the case panel, the API detail and
Open311 list them; the API's file route looks one up before it asks permission to serve it."""
from __future__ import annotations

from typing import Optional

from sqlalchemy import select
from sqlalchemy.orm import Session

from incidents.media import file_path
from incidents.model import MediaStage
from incidents.tables import CaseAttachment, Incident

STAGE_ORDER = {s.value: i for i, s in enumerate(MediaStage)}


def attachment_row(a: CaseAttachment) -> dict:
    """One attachment as the screens and the API show it: a photo with its file and thumbnail
    paths (served to roles that may see the case), a link with its URL (never fetched)."""
    photo = a.kind == "photo"
    return {"id": a.id, "stage": a.stage, "kind": a.kind, "mime": a.mime or None, "name": a.name or "",
            "url": file_path(a.incident_id, a.id) if photo else a.url,
            "thumbnail_url": file_path(a.incident_id, a.id, "thumbnail") if photo else None,
            "width": a.width, "height": a.height, "size": a.size if photo else None,
            "event_id": a.event_id, "created_by": a.created_by, "created_at": a.created_at}


def attachments_of(s: Session, incident_id: int) -> list[dict]:
    """Every photo and link of a case, by stage (report, resolve, verify), oldest first."""
    rows = s.scalars(select(CaseAttachment).where(CaseAttachment.incident_id == int(incident_id))
                     .order_by(CaseAttachment.id)).all()
    return sorted((attachment_row(a) for a in rows), key=lambda r: (STAGE_ORDER.get(r["stage"], 9), r["id"]))


def attachments_by_case(s: Session, incident_ids: list[int]) -> dict[int, list[dict]]:
    """The attachments of several cases (one query: a page of Open311 requests)."""
    if not incident_ids:
        return {}
    out: dict[int, list[dict]] = {}
    for a in s.scalars(select(CaseAttachment).where(CaseAttachment.incident_id.in_(incident_ids))
                       .order_by(CaseAttachment.id)):
        out.setdefault(a.incident_id, []).append(attachment_row(a))
    return out


def stored_file(s: Session, incident_id: int, attachment_id: int) -> Optional[tuple[CaseAttachment, Optional[str]]]:
    """(the attachment, its case's department) when ``attachment_id`` is an attachment *of this
    case*; None otherwise (another case's attachment id answers as if it did not exist)."""
    row = s.execute(select(CaseAttachment, Incident.department_code)
                    .join(Incident, Incident.id == CaseAttachment.incident_id)
                    .where(CaseAttachment.id == int(attachment_id),
                           CaseAttachment.incident_id == int(incident_id))).first()
    if row is None:
        return None
    s.expunge(row[0])
    return row[0], row[1]

"""Input bounds: the one place that says how large, how many and which characters every door
accepts (DESIGN §10: "every input is bounded in one place").

The REST API's pydantic models take their limits from here (so the OpenAPI document shows
them), and ``incidents.services`` checks the same bounds again, so a Dash callback, a crafted
callback POST, a CLI command or a feed gets the same answer: :class:`ValidationFailed` (a 4xx
at a door), never a database error or an overflow (a 500). Pure: stdlib only.
"""
from __future__ import annotations

import math
import re
from typing import Any, Optional

from incidents.lifecycle import NotFound, ValidationFailed

#: ids are INTEGER columns: 32-bit signed on PostgreSQL (SQLite's 64-bit holds them too)
MAX_ID = 2**31 - 1
#: list paging: page × per_page must stay a sane OFFSET (and far inside 64 bits)
MAX_PAGE = 1_000_000
MAX_PER_PAGE = 500
#: one extension (延期) in working hours: 90 working days of 8 h; more is a typo or an attack
#: (and 1e6 hours would walk the working calendar for centuries)
MAX_EXTEND_HOURS = 720.0
#: 督办 levels
SUPERVISE_LEVEL_MIN, SUPERVISE_LEVEL_MAX = 1, 9
#: free-text sizes shared by the API models and the services
MAX_TITLE = 200
MAX_NOTE = 4000
MAX_ASSISTING = 10          # assisting departments (协办) on one dispatch
MAX_DESCRIPTION = 10000
MAX_SEARCH = 200
#: characters no text field may hold: NUL (PostgreSQL text cannot store it) and unpaired UTF-16
#: surrogates (not encodable as UTF-8: the database driver would fail on them)
_BAD_CHARS = re.compile("[\x00\ud800-\udfff]")


def text_fault(value: Any) -> Optional[str]:
    """Why a text cannot be stored, or None when it can."""
    if isinstance(value, str):
        m = _BAD_CHARS.search(value)
        if m:
            what = "a NUL character" if m.group() == "\x00" else "an unpaired surrogate"
            return f"contains {what} (at position {m.start()})"
    return None


def check_text(value: Optional[str], field: str, max_len: Optional[int] = None) -> Optional[str]:
    """``value`` unchanged, or :class:`ValidationFailed` naming ``field``."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationFailed(f"{field} must be text", field=field)
    fault = text_fault(value)
    if fault:
        raise ValidationFailed(f"{field} {fault}", field=field)
    if max_len is not None and len(value) > max_len:
        raise ValidationFailed(f"{field} is {len(value):,} characters long (limit {max_len:,})", field=field)
    return value


def searchable(text: Optional[str]) -> str:
    """A search box's text as something a query can bind: bad characters dropped, length capped."""
    return _BAD_CHARS.sub("", text or "").strip()[:MAX_SEARCH]


def id_fault(value: Any) -> Optional[str]:
    if isinstance(value, bool) or not isinstance(value, int):
        return "must be an integer id"
    if not 1 <= value <= MAX_ID:
        return f"must be an id from 1 to {MAX_ID}"
    return None


def check_case_id(value: Any) -> int:
    """A case id given by a caller: one that cannot exist is "not found", never an overflow."""
    if id_fault(value):
        raise NotFound(f"case {str(value)[:40]} does not exist")
    return value


def check_id(value: Any, field: str) -> int:
    fault = id_fault(value)
    if fault:
        raise ValidationFailed(f"{field} {fault}", field=field)
    return value


def check_extend_hours(hours: Any) -> float:
    """Extra working hours of one extension: finite, > 0, at most MAX_EXTEND_HOURS."""
    try:
        value = float(hours)
    except (TypeError, ValueError, OverflowError):
        raise ValidationFailed("extend needs hours: a number", field="hours") from None
    if not math.isfinite(value) or not 0 < value <= MAX_EXTEND_HOURS:
        raise ValidationFailed(f"extend needs hours > 0 and at most {MAX_EXTEND_HOURS:g}", field="hours")
    return value


def check_supervise_level(level: Any) -> int:
    if isinstance(level, bool) or not isinstance(level, int) or not (
            SUPERVISE_LEVEL_MIN <= level <= SUPERVISE_LEVEL_MAX):
        raise ValidationFailed(f"supervise (督办) level must be an integer from {SUPERVISE_LEVEL_MIN} to "
                               f"{SUPERVISE_LEVEL_MAX}", field="level")
    return level


__all__ = ["MAX_ASSISTING", "MAX_DESCRIPTION", "MAX_EXTEND_HOURS", "MAX_ID", "MAX_NOTE", "MAX_PAGE", "MAX_PER_PAGE",
           "MAX_SEARCH", "MAX_TITLE", "SUPERVISE_LEVEL_MAX", "SUPERVISE_LEVEL_MIN", "check_case_id",
           "check_extend_hours", "check_id", "check_supervise_level", "check_text", "id_fault",
           "searchable", "text_fault"]

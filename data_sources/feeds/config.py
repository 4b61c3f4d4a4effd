"""Feeds as data: ``feeds.toml`` says which feeds the worker runs (README "Feeds and the worker").

    [feeds.city311]                 # the feed's name: its feed runs, quarantine rows and cursor
    kind = "http"                   # http (a JSON endpoint, data_sources.feeds.pull) | open311 | mqtt
    url = "https://partner.example/api/records"
    mapping = "native"              # a built-in mapping or a mapping file (relative: to this file)
    interval = "5m"                 # seconds, or "30s" / "5m" / "1h"
    token_env = "CITY311_TOKEN"     # credentials are named by environment variable, never written here

The file is found in the instance folder (``instance/feeds.toml``, which wins) or the pack folder,
or where the ``FEEDS_FILE`` setting says. It is validated (pydantic) before any feed runs; a mistake
is a :class:`FeedsError` naming the file, the line and the key, like a mapping file's.
"""
from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from data_sources.feeds.mappings import MappingError, get_mapping
from data_sources.feeds.mappings.spec import key_lines

FILENAME = "feeds.toml"
KINDS = ("http", "open311", "mqtt")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,29}")
_ENV = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*$")
MIN_INTERVAL = 1.0


class FeedsError(ValueError):
    """A feeds file that cannot be used: ``where`` is ``FILE line N, key a.b``."""

    def __init__(self, where: str, message: str):
        super().__init__(f"{where}: {message}")
        self.where, self.message = where, message


class FeedSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["http", "open311", "mqtt"]
    url: str                                   # http(s)://… ; mqtt://host[:port] for mqtt
    mapping: Optional[str] = None              # default: native (http), open311, iot_alarm (mqtt)
    interval: float = 300.0                    # seconds between runs (mqtt: the length of one feed run)
    enabled: bool = True
    source: Optional[str] = None               # the cases' source label; default: the feed's name
    crs: Optional[str] = None                  # of the records' coordinates; default: the mapping's, the pack's
    # http
    cursor_param: str = "since"
    cursor_field: str = "updated_at"
    limit_param: Optional[str] = "limit"
    page_size: int = Field(500, ge=1, le=10_000)
    token_env: Optional[str] = None            # its value is sent as "Authorization: Bearer …"
    # open311
    jurisdiction_id: Optional[str] = None
    api_key_env: Optional[str] = None
    lookback_hours: float = Field(24.0, gt=0, le=24 * 90)   # each run reads requests of this window
    # mqtt
    topics: list[str] = []
    qos: int = Field(1, ge=0, le=1)
    username_env: Optional[str] = None
    password_env: Optional[str] = None
    # how often a failed run is tried again (with doubling waits from retry_backoff seconds)
    retries: int = Field(3, ge=0, le=10)
    retry_backoff: float = Field(10.0, ge=0, le=3600)

    @field_validator("interval", mode="before")
    @classmethod
    def _duration(cls, v):
        if isinstance(v, bool):
            raise ValueError("must be seconds or a duration like '30s', '5m', '1h'")
        if isinstance(v, (int, float)):
            seconds = float(v)
        else:
            m = _DURATION.match(str(v))
            if m is None:
                raise ValueError(f"{v!r} is not seconds or a duration like '30s', '5m', '1h'")
            seconds = float(m.group(1)) * {"s": 1, None: 1, "m": 60, "h": 3600}[m.group(2)]
        if seconds < MIN_INTERVAL:
            raise ValueError(f"must be at least {MIN_INTERVAL:g} s")
        return seconds

    @field_validator("token_env", "api_key_env", "username_env", "password_env")
    @classmethod
    def _env_name(cls, v):
        if v is not None and not _ENV.fullmatch(v):
            raise ValueError(f"{v!r} is not an environment variable name (the credential itself never goes "
                             f"in this file)")
        return v

    @field_validator("topics")
    @classmethod
    def _topics(cls, v):
        for t in v:
            if not t or "\x00" in t or t.startswith("$share/"):
                raise ValueError(f"{t!r} is not a topic filter (the worker adds the shared subscription itself)")
        return v

    @model_validator(mode="after")
    def _by_kind(self):
        parts = urlsplit(self.url)
        schemes = ("mqtt", "mqtts") if self.kind == "mqtt" else ("http", "https")
        if parts.scheme not in schemes or not parts.hostname:
            raise ValueError(f"url {self.url!r}: a {self.kind} feed needs a {' or '.join(s + '://' for s in schemes)}"
                             f"host URL")
        if parts.password:
            raise ValueError("url: credentials never go in the URL; name environment variables "
                             "(token_env, api_key_env, username_env/password_env)")
        if self.kind == "mqtt" and not self.topics:
            raise ValueError("an mqtt feed needs topics = [\"…\"]")
        if self.kind != "mqtt" and self.topics:
            raise ValueError(f"topics are for mqtt feeds, not {self.kind}")
        if self.kind == "open311" and self.mapping not in (None, "open311"):
            raise ValueError("an open311 feed reads through the open311 mapping")
        return self

    @property
    def mapping_ref(self) -> str:
        return self.mapping or {"http": "native", "open311": "open311", "mqtt": "iot_alarm"}[self.kind]


@dataclass(frozen=True)
class Feed:
    """One declared feed, validated, with its mapping resolved."""

    name: str
    spec: FeedSpec
    mapping: str                 # a built-in's name or an absolute path

    @property
    def source(self) -> str:
        return self.spec.source or self.name

    def secret(self, field: str) -> Optional[str]:
        """The credential named by ``<field>`` (``token_env`` …) from the environment; None when the
        feed names none. KeyError (with the variable's name) when the named variable is not set."""
        var = getattr(self.spec, field)
        if var is None:
            return None
        value = os.environ.get(var)
        if value is None:
            raise KeyError(f"environment variable {var} (feed {self.name}, {field}) is not set")
        return value


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")
    feeds: dict[str, FeedSpec] = {}


def _where(label: str, loc: tuple, lines: dict) -> str:
    keys = tuple(str(p) for p in loc)
    for i in range(len(keys), 0, -1):
        if keys[:i] in lines:
            return f"{label} line {lines[keys[:i]]}, key {'.'.join(keys)}"
    return f"{label}, key {'.'.join(keys)}" if keys else label


def parse_feeds(text: str, label: str, base: Optional[Path] = None) -> list[Feed]:
    """The feeds of a feeds.toml text; FeedsError names the line and key of the first mistake."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        raise FeedsError(f"{label} line {m.group(1)}" if m else label,
                         f"not valid TOML: {str(exc).split(' (at line')[0]}") from None
    lines = key_lines(text)
    try:
        parsed = _File.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        err = next((e for e in errors if e.get("type") == "extra_forbidden"), errors[0])
        loc = tuple(p for p in err.get("loc", ()) if not str(p).startswith("function-"))
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if err.get("type") == "extra_forbidden":
            msg = "unknown key (a typo? see the README's 'Feeds and the worker')"
        elif err.get("type") == "missing":
            msg = "is required"
        raise FeedsError(_where(label, loc, lines), msg) from None
    feeds = []
    for name, spec in parsed.feeds.items():
        if not _NAME.fullmatch(name):
            raise FeedsError(_where(label, ("feeds", name), lines), "a feed name is 1-30 letters, digits, '_', '.' "
                                                                     "or '-'")
        ref = spec.mapping_ref
        if ("/" in ref or ref.endswith(".toml")) and base is not None and not Path(ref).is_absolute():
            ref = str((base / ref).resolve())
        try:
            mapping = get_mapping(ref)
        except MappingError as exc:
            raise FeedsError(_where(label, ("feeds", name, "mapping"), lines), f"mapping file error: {exc}") from None
        except KeyError as exc:
            raise FeedsError(_where(label, ("feeds", name, "mapping"), lines), str(exc.args[0])) from None
        feeds.append(Feed(name, spec, mapping.ref))
    return feeds


def read_feeds(path: Path) -> list[Feed]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FeedsError(str(path), f"cannot be read ({exc})") from None
    return parse_feeds(text, str(path), Path(path).resolve().parent)


def feeds_file(setting: str, instance_path: str | Path, pack_path: Path) -> Optional[Path]:
    """Where the feeds are declared: the ``FEEDS_FILE`` setting, else ``instance/feeds.toml``, else
    the pack's ``feeds.toml``; None when there is none."""
    if setting:
        path = Path(setting)
        if not path.is_file():
            raise FeedsError(str(path), "does not exist (setting FEEDS_FILE)")
        return path
    for folder in (Path(instance_path), Path(pack_path)):
        if (folder / FILENAME).is_file():
            return folder / FILENAME
    return None


__all__ = ["FILENAME", "KINDS", "Feed", "FeedSpec", "FeedsError", "feeds_file", "parse_feeds", "read_feeds"]

"""File import adapters: CSV (UTF-8, GBK / GB18030), Excel .xlsx, JSON (an array, an Open311
``requests`` list or ``{"records": […]}``), NDJSON and Open311 GeoReport v2 XML (``requests.xml``,
``services.xml``). Each yields ``(raw_dict, line_no)`` (see :mod:`data_sources.feeds.base`)."""
from __future__ import annotations

import codecs
import csv
import io
import json
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Iterable, Optional
from xml.etree import ElementTree

from data_sources.feeds.base import UNREADABLE, RecordIterator, blank

FORMATS = ("csv", "xlsx", "json", "ndjson", "xml")
_SUFFIX = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".xlsx": "xlsx", ".xlsm": "xlsx", ".json": "json",
           ".ndjson": "ndjson", ".jsonl": "ndjson", ".xml": "xml"}


def detect_format(path: Path) -> str:
    fmt = _SUFFIX.get(Path(path).suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: cannot tell the format from the suffix; expected one of {', '.join(_SUFFIX)}")
    return fmt


# longest first: the UTF-32 LE mark begins with the UTF-16 LE one
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def decode(data: bytes, encoding: Optional[str] = None) -> tuple[str, str]:
    """(text, encoding used). Detection: a UTF-32 / UTF-16 byte-order mark (what Excel's "Unicode
    text" and many Windows tools write), UTF-16 without a mark when every other byte of ASCII text
    is NUL, then UTF-8 (with or without BOM), then GB18030 (a superset of GBK and GB2312). Bytes
    valid in none are replaced by U+FFFD, which validation rejects per record ("wrong text
    encoding") instead of failing the whole file."""
    if encoding:
        return data.decode(encoding, errors="replace"), encoding
    for bom, enc in _BOMS:
        if data.startswith(bom):
            return data.decode(enc, errors="replace"), enc
    head = data[:200]
    if len(head) >= 4 and head.count(0) * 3 >= len(head):
        enc = "utf-16-le" if head[1::2].count(0) > head[0::2].count(0) else "utf-16-be"
        return data.decode(enc, errors="replace"), enc
    for enc in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(enc), enc
        except UnicodeDecodeError:
            continue
    return data.decode("utf-8", errors="replace"), "utf-8 (with undecodable bytes)"


def read_csv(path: Path, *, encoding: Optional[str] = None, delimiter: Optional[str] = None) -> RecordIterator:
    text, _ = decode(Path(path).read_bytes(), encoding)
    yield from csv_records(text, delimiter=delimiter or ("\t" if Path(path).suffix.lower() == ".tsv" else ","))


def csv_records(text: str, *, delimiter: str = ",") -> RecordIterator:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        return
    header = [h.strip() for h in header]
    line = reader.line_num
    while True:
        start = line + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            line = reader.line_num
            yield {UNREADABLE: f"malformed CSV ({exc})", "text": ""}, start
            continue
        line = reader.line_num
        if not any(v.strip() for v in row):
            continue
        record = {h: (row[i] if i < len(row) else None) for i, h in enumerate(header)}
        if len(row) > len(header):
            record["_extra"] = row[len(header):]
        yield record, start


def _cell(value):
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, (date, time)):
        return value.isoformat()
    return value


def read_xlsx(path: Path, *, sheet: Optional[str] = None) -> RecordIterator:
    """The first sheet (or ``sheet``): row 1 is the header. Excel dates come as naive datetimes
    (local time of the pack); they are passed on as ISO text."""
    from openpyxl import load_workbook
    wb = load_workbook(path, read_only=True, data_only=True)
    try:
        ws = wb[sheet] if sheet else wb.worksheets[0]
        rows = ws.iter_rows(values_only=True)
        try:
            header = [str(h).strip() if h is not None else f"column{i + 1}" for i, h in enumerate(next(rows))]
        except StopIteration:
            return
        for n, row in enumerate(rows, start=2):
            if row is None or all(v is None or (isinstance(v, str) and not v.strip()) for v in row):
                continue
            yield {h: _cell(row[i]) if i < len(row) else None for i, h in enumerate(header)}, n
    finally:
        wb.close()


def json_records(data) -> RecordIterator:
    if isinstance(data, dict):
        for key in ("requests", "service_requests", "records", "data", "items"):
            if isinstance(data.get(key), list):
                data = data[key]
                break
        else:
            data = [data]
    if not isinstance(data, list):
        yield {UNREADABLE: "JSON is neither an array of records nor an object", "text": str(data)[:200]}, 1
        return
    for n, item in enumerate(data, start=1):
        if isinstance(item, dict):
            yield item, n
        else:
            yield {UNREADABLE: f"record #{n} is a JSON {type(item).__name__}, not an object",
                   "text": json.dumps(item, ensure_ascii=False)[:2000]}, n


def read_json(path: Path, *, encoding: Optional[str] = None) -> RecordIterator:
    text, _ = decode(Path(path).read_bytes(), encoding)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        yield {UNREADABLE: f"file is not valid JSON ({exc})", "text": text[:2000]}, 1
        return
    except RecursionError:
        yield {UNREADABLE: "file is not valid JSON (nested too deeply)", "text": text[:200]}, 1
        return
    yield from json_records(data)


def read_ndjson(path: Path, *, encoding: Optional[str] = None) -> RecordIterator:
    text, _ = decode(Path(path).read_bytes(), encoding)
    yield from ndjson_records(text)


def ndjson_records(text: str) -> RecordIterator:
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            yield {UNREADABLE: f"line is not valid JSON ({exc.msg})", "text": line[:2000]}, n
            continue
        except RecursionError:
            yield {UNREADABLE: "line is not valid JSON (nested too deeply)", "text": line[:200]}, n
            continue
        if isinstance(item, dict):
            yield item, n
        else:
            yield {UNREADABLE: f"line is a JSON {type(item).__name__}, not an object", "text": line[:2000]}, n


_XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"


def _xml_value(el: ElementTree.Element) -> Any:
    """An element as JSON would have it: ``xsi:nil`` -> None, a leaf -> its text, a list element
    (``<notes><note>…``: its children share one tag and it is that tag's plural, or there are
    several) -> a list, else an object of its children."""
    if el.get(_XSI_NIL, "").strip().lower() in ("true", "1"):
        return None
    children = list(el)
    if not children:
        return (el.text or "").strip()
    tags = {c.tag for c in children}
    if len(tags) == 1 and (len(children) > 1 or el.tag in (children[0].tag + "s", children[0].tag + "es")):
        return [_xml_value(c) for c in children]
    return {c.tag: _xml_value(c) for c in children}


def xml_records(data: bytes) -> RecordIterator:
    """Records of an Open311 GeoReport v2 XML document: ``<service_requests><request>…`` or
    ``<services><service>…`` (each child of the root is a record), or one bare record. The
    standard library's parser never fetches external entities, and its expat (≥ 2.4.1) refuses
    entity-expansion bombs: a hostile file is one unreadable record, not a hung import."""
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        yield {UNREADABLE: f"file is not valid XML ({exc})", "text": data[:2000].decode("utf-8", "replace")}, 1
        return
    if not len(root):
        return          # <service_requests/>: no records
    records = list(root) if all(len(child) for child in root) else [root]
    for n, el in enumerate(records, start=1):
        value = _xml_value(el)
        if isinstance(value, dict):
            yield value, n
        else:
            yield {UNREADABLE: f"XML record #{n} <{el.tag}> has no fields", "text": str(value)[:2000]}, n


def read_xml(path: Path) -> RecordIterator:
    yield from xml_records(Path(path).read_bytes())   # the XML declaration names the encoding


def service_names(path: str | Path) -> dict[str, str]:
    """service_code -> service_name of an Open311 ``services.json`` or ``services.xml`` file."""
    out = {}
    for raw, _ in read_records(path):
        if UNREADABLE in raw:
            raise ValueError(f"{path}: {raw[UNREADABLE]}")
        if not blank(raw.get("service_code")) and not blank(raw.get("service_name")):
            out[str(raw["service_code"]).strip()] = str(raw["service_name"]).strip()
    return out


def with_service_names(records: Iterable[tuple[dict, int]], names: dict[str, str]) -> RecordIterator:
    """Requests that carry only a service_code get the service's name (several servers leave it
    out), so the pack's mapping.csv can match either."""
    for raw, line in records:
        code = raw.get("service_code")
        if blank(raw.get("service_name")) and not blank(code) and str(code).strip() in names:
            raw = {**raw, "service_name": names[str(code).strip()]}
        yield raw, line


def read_records(path: str | Path, *, fmt: Optional[str] = None, encoding: Optional[str] = None) -> RecordIterator:
    """Records of a file, by format (from the suffix unless given)."""
    path = Path(path)
    fmt = fmt or detect_format(path)
    if fmt == "csv":
        return read_csv(path, encoding=encoding)
    if fmt == "xlsx":
        return read_xlsx(path)
    if fmt == "json":
        return read_json(path, encoding=encoding)
    if fmt == "ndjson":
        return read_ndjson(path, encoding=encoding)
    if fmt == "xml":
        return read_xml(path)
    raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


def count_records(path: str | Path, *, fmt: Optional[str] = None) -> Optional[int]:
    """A cheap estimate of the number of records, for a progress bar (None if unknown)."""
    path = Path(path)
    fmt = fmt or detect_format(path)
    if fmt in ("csv", "ndjson"):
        with path.open("rb") as f:
            n = sum(1 for _ in f)
        return max(n - (1 if fmt == "csv" else 0), 0)
    return None


__all__ = ["FORMATS", "count_records", "csv_records", "decode", "detect_format", "json_records", "read_csv",
           "ndjson_records", "read_json", "read_ndjson", "read_records", "read_xlsx", "read_xml", "service_names",
           "with_service_names", "xml_records"]

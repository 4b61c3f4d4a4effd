"""Mappings as data: a mapping file (TOML, see the README's "Mapping files") says how a source's
records become cases — which columns hold the id, the texts, the times (formats, time zone),
the coordinates (CRS, placeholder points), the status -> state table, the agency and the type.
One generic mapper (:mod:`.mapper`) applies any of them.

Built in, beside this module: ``nyc311``, ``sf311``, ``open311`` (GeoReport v2), ``native``
(our own column names) and ``iot_alarm`` (device alarms: the mqtt feed's). ``get_mapping(NAME_OR_PATH)`` loads a built-in by name or any file by path.

Values still map through the pack's ``mapping.csv`` (kind ``agency`` / ``queue`` -> department,
``complaint_type`` -> category): agencies and types are facts of the city, shared by every source
of it and checked against the pack's departments and categories when the pack loads; a mapping
file only says which column to look up in which kind of row.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path

from data_sources.feeds.mappings.mapper import DeclarativeMapping
from data_sources.feeds.mappings.spec import MappingError, parse_spec, read_spec

BUILTIN_DIR = Path(__file__).resolve().parent


@cache
def _builtin_names() -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in BUILTIN_DIR.glob("*.toml")))


def builtin_names() -> list[str]:
    return list(_builtin_names())


@cache
def _builtin(name: str) -> DeclarativeMapping:
    path = BUILTIN_DIR / f"{name}.toml"
    return DeclarativeMapping(read_spec(path), name, path)


def load_mapping_file(path: str | Path) -> DeclarativeMapping:
    """A mapping from a file, validated before any record is read (MappingError: line and key)."""
    path = Path(path).resolve()
    return DeclarativeMapping(read_spec(path), str(path), path)


def get_mapping(name_or_path: str | Path) -> DeclarativeMapping:
    """A built-in mapping by name, or a mapping file by path (anything with a ``/`` or ending in
    ``.toml``). KeyError for an unknown name; MappingError for a broken file."""
    ref = str(name_or_path)
    if ref in builtin_names():
        return _builtin(ref)
    if "/" in ref or "\\" in ref or ref.endswith(".toml"):
        if not Path(ref).is_file():
            raise KeyError(f"mapping file {ref} does not exist")
        return load_mapping_file(ref)
    raise KeyError(f"unknown mapping {ref!r}; expected one of {', '.join(builtin_names())} or a path to a .toml file")


class _Builtins(Mapping):
    """The built-in mappings by name, loaded when first asked for."""

    def __getitem__(self, name: str) -> DeclarativeMapping:
        if name not in builtin_names():
            raise KeyError(name)
        return _builtin(name)

    def __iter__(self) -> Iterator[str]:
        return iter(builtin_names())

    def __len__(self) -> int:
        return len(builtin_names())


MAPPINGS: Mapping[str, DeclarativeMapping] = _Builtins()


__all__ = ["BUILTIN_DIR", "MAPPINGS", "DeclarativeMapping", "MappingError", "builtin_names", "get_mapping",
           "load_mapping_file", "parse_spec"]

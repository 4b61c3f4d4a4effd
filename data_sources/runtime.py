"""What a running app holds: the database and the loaded city pack with its case rules."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from data_sources.packs import Pack, load_pack
from data_sources.store.db import EXTENSION_KEY, Database
from incidents import sla
from incidents.routing import AreaIndex, Router, Rule
from incidents.services import CaseRules

PACK_KEY = "cityops.pack"


@dataclass
class PackRuntime:
    pack: Pack

    @cached_property
    def calendar(self) -> sla.WorkCalendar:
        p = self.pack
        return sla.WorkCalendar(p.office_hours, p.timezone, holiday_source=p.holiday_source,
                                overrides=p.calendar_overrides)

    @cached_property
    def rules(self) -> CaseRules:
        p = self.pack
        router = Router([Rule(int(r.id), r.category_code, r.area_code, r.department_code, r.note)
                         for r in p.routing_rules],
                        major_of={c.code: c.major_code for c in p.categories},
                        triage_department=p.triage_department,
                        category_names={c.code: c.name for c in p.categories},
                        area_names={a.code: a.name for a in p.areas},
                        department_names={d.code: d.name for d in p.departments})
        areas = AreaIndex([(a.code, a.geometry) for a in p.districts()],
                          [(a.code, a.parent_code, a.geometry) for a in p.grids()])
        return CaseRules(calendar=self.calendar, router=router, areas=areas,
                         priority_factors={k: float(v) for k, v in p.priority_factors.items()},
                         sign_for_hours=dict(p.workflow.sign_for_hours), max_returns=p.workflow.max_returns,
                         return_reasons=dict(p.workflow.return_reasons),
                         disposal_clock=p.workflow.disposal_clock,
                         assist_reply_share=p.workflow.assist_reply_share,
                         citizen_channels=tuple(p.workflow.citizen_channels), repeats=p.repeats)

    @property
    def timezone(self) -> str:
        return self.pack.timezone


_loaded: dict[tuple, PackRuntime] = {}


def runtime_for(name_or_path: str) -> PackRuntime:
    """Packs are read-only data: one loaded copy per process (keyed by the files' mtimes)."""
    from data_sources.packs import _resolve
    folder = _resolve(name_or_path)
    key = (str(folder),) + tuple(sorted((p.name, p.stat().st_mtime_ns) for p in folder.iterdir()))
    if key not in _loaded:
        _loaded[key] = PackRuntime(load_pack(name_or_path))
    return _loaded[key]


def init_app(server) -> None:
    cfg = server.config
    server.extensions[EXTENSION_KEY] = Database(cfg["DATABASE_URL"], connect_timeout=cfg.get("DB_CONNECT_TIMEOUT"),
                                                statement_timeout=cfg.get("DB_STATEMENT_TIMEOUT"),
                                                pool_timeout=cfg.get("DB_POOL_TIMEOUT"),
                                                read_url=cfg.get("READ_DATABASE_URL") or None,
                                                read_pool_size=cfg.get("DB_READ_POOL_SIZE"))
    server.extensions[PACK_KEY] = runtime_for(server.config["PACK"])


def get_runtime(app=None) -> PackRuntime:
    if app is None:
        from flask import current_app
        app = current_app
    return app.extensions[PACK_KEY]

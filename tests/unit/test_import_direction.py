"""The import direction of DESIGN.md §1 stays true: an ast walk over the source tree."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PURE_CORE = ["incidents/model.py", "incidents/lifecycle.py", "incidents/sla.py", "incidents/routing.py",
             "incidents/kpis.py"]
FORBIDDEN_IN_CORE = {"dash", "flask", "flask_login", "sqlalchemy", "data_sources", "dashboards", "layers", "app"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _top(names: set[str]) -> set[str]:
    return {n.split(".")[0] for n in names}


def test_the_pure_core_imports_no_web_or_database_framework():
    for rel in PURE_CORE:
        path = ROOT / rel
        if path.exists():
            bad = _top(_imports(path)) & FORBIDDEN_IN_CORE
            assert not bad, f"{rel} imports {bad}"


def test_nothing_imports_app_or_a_page_module():
    pages = {p.stem for p in (ROOT / "dashboards").glob("*.py") if not p.stem.startswith("_")}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith((".venv", "tests/", "bench/", "migrations/")) or rel == "app.py":
            continue
        names = _imports(path)
        assert "app" not in names, f"{rel} imports app"
        for page in pages:
            assert f"dashboards.{page}" not in names, f"{rel} imports the page module dashboards.{page}"


def test_pages_reach_the_domain_only_through_services_and_queries():
    allowed_incidents = {"incidents.services", "incidents.queries", "incidents.queries.wall", "incidents.queries.brief",
                         "incidents.queries.cases", "incidents.queries.reference",
                         "incidents.commands", "incidents.kpis",
                         "incidents.model", "incidents.lifecycle"}
    for path in (ROOT / "dashboards").glob("*.py"):
        for name in _imports(path):
            if name.startswith("incidents."):
                assert name in allowed_incidents, f"{path.name} imports {name}"
            assert not name.startswith(("sqlalchemy", "data_sources")), f"{path.name} imports {name}"


def test_layers_are_pure_figure_code():
    for path in (ROOT / "layers").glob("*.py"):
        bad = _top(_imports(path)) & {"dash", "flask", "sqlalchemy", "incidents", "data_sources", "dashboards"}
        assert not bad, f"layers/{path.name} imports {bad}"

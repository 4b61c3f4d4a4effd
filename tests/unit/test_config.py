"""Config layering: defaults → CITYOPS_* environment → overrides."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from app import DEFAULTS, load_config


def test_defaults_are_the_embedded_sqlite_with_the_hangzhou_pack():
    cfg = load_config(environ={})
    assert cfg["DATABASE_URL"].startswith("sqlite:///") and cfg["PACK"] == "hangzhou"
    assert cfg["LANG"] == "zh-CN" and cfg["TILE_URL"] == "" and cfg["DEMO_FEED"] is True
    assert cfg["SECRET_KEY"]


def test_environment_overrides_defaults_with_types():
    cfg = load_config(environ={"CITYOPS_DATABASE_URL": "postgresql://u@h/db", "CITYOPS_PORT": "9000",
                               "CITYOPS_WALL_REFRESH_SECONDS": "2.5", "CITYOPS_LANG": "en"})
    assert cfg["DATABASE_URL"] == "postgresql://u@h/db" and cfg["PORT"] == 9000
    assert cfg["WALL_REFRESH_SECONDS"] == 2.5 and cfg["LANG"] == "en"
    assert cfg["DEMO_FEED"] is False  # not the embedded default: no demo feed unless asked


def test_overrides_win_over_the_environment():
    cfg = load_config({"PACK": "/data/packs/ningbo", "DEMO_FEED": True},
                      environ={"CITYOPS_PACK": "nyc", "CITYOPS_DEMO_FEED": "false"})
    assert cfg["PACK"] == "/data/packs/ningbo" and cfg["DEMO_FEED"] is True


def test_a_bad_boolean_in_the_environment_is_a_clear_error():
    with pytest.raises(ValueError, match="CITYOPS_DEMO_FEED"):
        load_config(environ={"CITYOPS_DEMO_FEED": "maybe"})


def test_every_default_has_an_environment_name():
    assert all(k.isupper() for k in DEFAULTS)


ROOT = Path(__file__).resolve().parents[2]
# a setting read anywhere: config.get("KEY"), config["KEY"], cfg.get("KEY"), cfg["KEY"] (not a write)
_READ = re.compile(r"""\b(?:config|cfg)(?:\.get\(|\[)\s*["']([A-Z][A-Z0-9_]*)["']\s*(?:\](?!\s*=[^=])|[,)])""")


def _settings_read_in_code() -> dict[str, str]:
    found: dict[str, str] = {}
    for folder in ("app.py", "data_sources", "dashboards", "incidents", "layers"):
        path = ROOT / folder
        for file in [path] if path.is_file() else sorted(path.rglob("*.py")):
            for key in _READ.findall(file.read_text(encoding="utf-8")):
                found.setdefault(key, str(file.relative_to(ROOT)))
    return found


def test_every_setting_read_in_the_code_is_a_default_and_a_readme_row():
    found = _settings_read_in_code()
    assert {"PUSH_FEEDS", "PUSH_MAX_BYTES", "DEMO_DAILY_CASES", "PDF_FONT", "HOST", "PORT"} <= set(found)
    assert {k: f for k, f in found.items() if k not in DEFAULTS} == {}
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert [k for k in DEFAULTS if f"| `CITYOPS_{k}` |" not in readme] == []


def test_every_default_reaches_its_setting_from_the_environment():
    typed = {bool: "true", int: "7", float: "2.5", str: "x"}
    for key, default in DEFAULTS.items():
        if key == "DEMO_FEED":
            continue   # None: a boolean, tested above
        cfg = load_config(environ={f"CITYOPS_{key}": typed[type(default)]})
        assert cfg[key] == type(default)(typed[type(default)]) if type(default) is not bool else cfg[key] is True


def test_importing_app_builds_nothing():
    # a fresh interpreter: another test may already have built the default app in this one
    code = ("import sys, app; assert 'app' not in vars(app) and 'server' not in vars(app), 'built'; "
            "assert 'dash' not in sys.modules and 'flask' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)

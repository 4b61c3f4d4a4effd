"""Config layering: defaults → CITYOPS_* environment → overrides."""
from __future__ import annotations

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

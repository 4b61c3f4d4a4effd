"""Memoization for read models (flask-caching): in-process by default, Redis in production.

Keys include the data version, so every screen shares one computation per version and a
write is visible at the next refresh.
"""
from __future__ import annotations

from flask_caching import Cache

cache = Cache()


def key_prefix(app) -> str:
    """Apps on different databases must never share entries, even in one Redis."""
    import hashlib
    ident = f"{app.config['DATABASE_URL']}|{app.config['PACK']}".encode()
    return f"cityops:{hashlib.sha1(ident).hexdigest()[:10]}:"


def init_app(app) -> None:
    url = app.config.get("CACHE_URL") or ""
    if url.startswith("redis://") or url.startswith("rediss://"):
        cfg = {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": url,
               "CACHE_KEY_PREFIX": key_prefix(app), "CACHE_DEFAULT_TIMEOUT": 300}
    elif url == "null":
        cfg = {"CACHE_TYPE": "NullCache"}
    else:
        cfg = {"CACHE_TYPE": "SimpleCache", "CACHE_DEFAULT_TIMEOUT": 300, "CACHE_THRESHOLD": 2000}
    cfg["CACHE_ENABLE_SIGNALS"] = True  # hits and misses are counted by /metrics (data_sources.web.metrics)
    cache.init_app(app, config=cfg)

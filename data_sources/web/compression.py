"""Compressed answers (Flask-Compress): JSON callback answers, API answers, pages and assets go
out as brotli or gzip, whichever the client accepts. A shared answer (data_sources.web.answers)
arrives here already compressed and passes untouched."""
from __future__ import annotations

from flask import Flask
from flask_compress import Compress

#: br first (smaller, what browsers ask for), gzip for every other client; no zstd/deflate: one
#: compressor fewer to keep in mind and every client we serve speaks one of the two
ALGORITHMS = ["br", "gzip"]
GZIP_LEVEL = 6
BR_QUALITY = 5    # brotli: about gzip's CPU, smaller answers


def init_app(server: Flask) -> None:
    server.config.setdefault("COMPRESS_ALGORITHM", ALGORITHMS)
    server.config.setdefault("COMPRESS_LEVEL", GZIP_LEVEL)
    server.config.setdefault("COMPRESS_BR_LEVEL", BR_QUALITY)
    server.config.setdefault("COMPRESS_MIN_SIZE", 500)
    # files sent from disk (/assets/) are streams: compressed as they stream (gzip cannot be, in Flask-Compress)
    server.config.setdefault("COMPRESS_ALGORITHM_STREAMING", ["br", "deflate"])
    Compress(server)

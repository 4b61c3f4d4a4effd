"""A small TCP proxy for tests, put between the app and PostgreSQL:

- ``stop()``: the database is unreachable (open connections are cut, new ones refused);
- ``hang()``: the database stops answering (new connections are accepted and never forwarded,
  bytes on open ones go nowhere; nothing is closed, so only the client's own timeouts help);
- ``start()`` after ``stop()``, or ``resume()`` after ``hang()``: forwarding again. Connections that
  lived through a hang are cut at ``resume()`` (their protocol state is lost), as a restart would.
"""
from __future__ import annotations

import socket
import threading


class TcpProxy:
    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.port = 0
        self._server: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._held: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stopped = False
        self._hanging = False

    def start(self) -> "TcpProxy":
        self._stopped = False
        self._hanging = False
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", self.port))
        self.port = srv.getsockname()[1]
        srv.listen(64)
        self._server = srv
        threading.Thread(target=self._accept, args=(srv,), daemon=True).start()
        return self

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            if self._server is not None:
                self._server.close()
                self._server = None
            self._cut_all()

    def hang(self) -> None:
        """Stop answering: accept, never forward, never close."""
        with self._lock:
            self._hanging = True

    def resume(self) -> None:
        with self._lock:
            self._hanging = False
            self._cut_all()

    def _cut_all(self) -> None:
        for c in self._conns + self._held:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()
        self._conns.clear()
        self._held.clear()

    def _accept(self, srv: socket.socket) -> None:
        while True:
            try:
                client, _ = srv.accept()
            except OSError:
                return
            with self._lock:
                if self._hanging:   # a black hole: the connection is open, nobody answers
                    self._held.append(client)
                    continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._stopped or self._server is not srv:  # accepted while stopping: cut it too
                    client.close()
                    upstream.close()
                    continue
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if self._hanging:
                    continue   # swallowed: the other side never hears of it
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass

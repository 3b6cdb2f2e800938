"""A tiny HTTP listener on 127.0.0.1 that records every request's headers and answers 401: the stand-in for a
host a browser user typed as a base URL, which must never receive the server's key.

    with KeyListener() as listener:
        ...  # point a provider at listener.url
        assert SECRET not in listener.all_header_text()
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.server.requests.append({"method": self.command, "path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}})
        body = b'{"type":"error","error":{"type":"authentication_error","message":"no"}}'
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args) -> None:  # quiet
        pass


class KeyListener:
    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.requests = []
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def requests(self) -> list[dict]:
        return list(self.server.requests)

    def all_header_text(self) -> str:
        """Every header name and value received, one per line."""
        return "\n".join(f"{k}: {v}" for r in self.requests for k, v in r["headers"].items())

    def __enter__(self) -> KeyListener:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

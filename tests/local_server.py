"""A local HTTP server standing in for a download mirror, for the tests that download.

Usage (in a test module):
    from local_server import Server, local_only  # noqa: F401  (local_only is autouse)
    srv = Server({"name.pt": b"..."}); ...; srv.url; srv.requests; srv.close()
"""
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class Server:
    """Serves `files` ({name: bytes}) under /mirror/ on 127.0.0.1 and records (path, Range
    header) per request; `server.files` may be changed while it runs.

    Switches: `corrupt` (file names served with one byte flipped), `drop` ({file name: K},
    send only K bytes once, then close), `ignore_range` (answer 200 with the whole file).
    """

    def __init__(self, files: dict | None = None):
        self.files, self.requests = dict(files or {}), []
        self.corrupt, self.drop, self.ignore_range = set(), {}, False
        owner = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 5

            def do_GET(self):
                owner.answer(self)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/mirror"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def answer(self, handler):
        self.requests.append((handler.path, handler.headers.get("Range")))
        name = handler.path.removeprefix("/mirror/")
        if not handler.path.startswith("/mirror/") or name not in self.files:
            handler.send_error(404)
            return
        body = self.files[name]
        if name in self.corrupt:
            body = body[:100] + bytes([body[100] ^ 1]) + body[101:]
        start, wanted = 0, handler.headers.get("Range")
        if wanted and not self.ignore_range:
            start = int(wanted.removeprefix("bytes=").removesuffix("-"))
            if start >= len(body):
                handler.send_response(416)
                handler.send_header("Content-Range", f"bytes */{len(body)}")
                handler.send_header("Content-Length", "0")
                handler.end_headers()
                return
            handler.send_response(206)
            handler.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            handler.send_response(200)
        handler.send_header("Content-Length", str(len(body) - start))
        handler.end_headers()
        cut = self.drop.pop(name, None)
        handler.wfile.write(body[start:] if cut is None else body[start:start + cut])
        handler.close_connection = True

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(autouse=True)
def local_only(monkeypatch):
    """No proxy and no mirror from the environment: requests go to the test server only."""
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                "ALL_PROXY", "FETCH_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "*")

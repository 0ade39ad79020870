"""A real HTTP server on 127.0.0.1 for the streaming, DANDI and download tests.

It serves files (GET and HEAD, honouring single ``Range: bytes=a-b`` requests with 206 answers),
JSON routes (for an emulated DANDI API) and redirects, and logs every request it answers.
"""
from __future__ import annotations

import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest


class _Handler(BaseHTTPRequestHandler):
    server: "LocalHTTPServer"

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_HEAD(self):
        self._answer(body=False)

    def do_GET(self):
        self._answer(body=True)

    def _answer(self, body: bool):
        parsed = urlparse(self.path)
        self.server.log.append((self.command, parsed.path, self.headers.get("Range")))
        if parsed.path in self.server.redirects:
            self.send_response(302)
            self.send_header("Location", self.server.redirects[parsed.path])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if parsed.path in self.server.routes:
            status, payload = self.server.routes[parsed.path](parse_qs(parsed.query))
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)
            return
        if parsed.path not in self.server.files:
            self.send_error(404)
            return
        data = Path(self.server.files[parsed.path]).read_bytes()
        start, stop = 0, len(data)
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range") or "")
        if match:
            first, last = match.groups()
            start = int(first) if first else max(len(data) - int(last), 0)
            stop = min(int(last) + 1, len(data)) if first and last else len(data)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(stop - start))
        self.end_headers()
        if body:
            self.wfile.write(data[start:stop])
            self.server.bytes_sent += stop - start


class LocalHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, Path] = {}
        self.routes: dict = {}
        self.redirects: dict[str, str] = {}
        self.log: list[tuple[str, str, str | None]] = []
        self.bytes_sent = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def serve(self, url_path: str, file) -> str:
        """Serve ``file`` at ``url_path``; returns its full URL."""
        self.files[url_path] = Path(file)
        return self.url + url_path


@pytest.fixture
def http_server():
    server = LocalHTTPServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# An emulated DANDI Archive API: the endpoints DandiAsset.resolve calls, answering for one asset.
DANDISET, VERSION, ASSET_PATH = "000140", "0.220113.0408", "sub-X/sub-X_ses-1_ecephys.nwb"


def emulate_dandi(server, file, *, direct: bool = True, digest: str | None = None):
    """Serve ``file`` as the one asset of DANDISET/VERSION through the API endpoints the client calls."""
    api = server.url + "/api"
    asset_id = "0f0e0d0c-aaaa-bbbb-cccc-000000000001"
    blob = server.serve("/blobs/0f0/e0d/0f0e0d0c", file)
    server.redirects[f"/api/assets/{asset_id}/download/"] = blob
    sha = digest or hashlib.sha256(file.read_bytes()).hexdigest()

    def assets(query):
        prefix = query.get("path", [""])[0]
        rows = [
            {"asset_id": "other", "path": "sub-X/sub-X_ses-1_ecephys.nwb.bak", "size": 1, "metadata": {}},
            {
                "asset_id": asset_id,
                "path": ASSET_PATH,
                "size": file.stat().st_size,
                "metadata": {
                    "contentUrl": [f"{api}/assets/{asset_id}/download/"] + ([blob] if direct else []),
                    "digest": {"dandi:dandi-etag": "0-1", "dandi:sha2-256": sha},
                },
            },
        ]
        rows = [r for r in rows if r["path"].startswith(prefix)]
        page = int(query.get("page", ["1"])[0])  # one asset per page, as a long listing would be paginated
        more = f"{endpoint}?path={prefix}&metadata=1&order=path&page={page + 1}" if page < len(rows) else None
        return 200, {"count": len(rows), "next": more, "results": rows[page - 1:page]}

    endpoint = f"{api}/dandisets/{DANDISET}/versions/{VERSION}/assets/"
    server.routes[endpoint.removeprefix(server.url)] = assets
    return api, blob

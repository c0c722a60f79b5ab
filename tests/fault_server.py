"""A small real HTTP server speaking just enough of the Chat Completions API to misbehave on purpose.

Each request is matched to a script by a marker found in its user text (the question); the script is a list of
behaviours consumed one per attempt (the last one repeats): "ok", "429" (Retry-After in seconds), "429-date"
(Retry-After as an HTTP date), "500", "503", "400", "slow" (answers after ``slow_s``), "malformed" (200 with a body
that is not JSON), "nochoices" (200 with JSON that is not a completion). Unscripted requests get "ok". It counts
attempts per marker and the largest number of requests in flight at once, and checks the bearer key.
"""

from __future__ import annotations

import json
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FaultServer:
    def __init__(self, *, answer: str = "<answer>A</answer>", slow_s: float = 1.5, retry_after: float = 0.2,
                 api_key: str | None = None):
        self.answer, self.slow_s, self.retry_after, self.api_key = answer, slow_s, retry_after, api_key
        self.scripts: dict[str, list[str]] = {}
        self.attempts: dict[str, int] = {}
        self.times: dict[str, list[float]] = {}
        self.bodies: list[dict] = []
        self.in_flight = self.max_in_flight = 0
        self.bad_keys = 0
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> FaultServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def script(self, marker: str, *behaviours: str) -> None:
        self.scripts[marker] = list(behaviours)

    def _next(self, body: dict) -> tuple[str, str]:
        text = json.dumps(body.get("messages", []))
        marker = next((m for m in self.scripts if m in text), "")
        with self._lock:
            self.bodies.append(body)
            n = self.attempts.get(marker, 0)
            self.attempts[marker] = n + 1
            self.times.setdefault(marker, []).append(time.monotonic())
            script = self.scripts.get(marker) or ["ok"]
            return marker, script[min(n, len(script) - 1)]

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet test output
                pass

            def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                try:
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                    pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                if server.api_key is not None and self.headers.get("Authorization") != f"Bearer {server.api_key}":
                    server.bad_keys += 1
                    return self._send(401, b'{"error": {"message": "bad key"}}')
                with server._lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    self._behave(*server._next(body), body)
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _behave(self, marker: str, behaviour: str, body: dict) -> None:
                error = json.dumps({"error": {"message": f"injected {behaviour}"}}).encode()
                if behaviour == "429":
                    return self._send(429, error, {"Retry-After": str(server.retry_after)})
                if behaviour == "429-date":
                    return self._send(429, error, {"Retry-After": formatdate(time.time() + 2, usegmt=True)})
                if behaviour in ("500", "503", "400"):
                    return self._send(int(behaviour), error)
                if behaviour == "malformed":
                    return self._send(200, b'{"id": "x", "choices": [{"mess')
                if behaviour == "nochoices":
                    return self._send(200, b'{"id": "x", "object": "chat.completion"}')
                if behaviour == "slow":
                    time.sleep(server.slow_s)
                time.sleep(0.02)  # long enough for concurrent requests to overlap
                n = int(body.get("n", 1))
                reply = {"id": "cmpl-1", "object": "chat.completion", "created": int(time.time()),
                         "model": body.get("model"),
                         "choices": [{"index": i, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": server.answer}} for i in range(n)],
                         "usage": {"prompt_tokens": 100, "completion_tokens": 5, "total_tokens": 105}}
                self._send(200, json.dumps(reply).encode())

        return Handler

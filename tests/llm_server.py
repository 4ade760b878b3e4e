"""A small OpenAI-compatible chat-completions server on loopback, for tests (real HTTP).

``FakeLLMServer`` answers ``POST /v1/chat/completions`` with canned questions (a JSON list,
or another shape: ``answer_format``) and ``GET /v1/models`` with its one model. It counts
requests and the most requests in flight at once, and can play every fault question
generation must survive:

* a request for another model -> 404 ``model_not_found`` (as OpenAI and Ollama answer);
* a path other than ``/v1/chat/completions`` (a base URL without ``/v1``) -> 404 text;
* ``api_key`` set and a request without ``Authorization: Bearer <api_key>`` -> 401;
* a fault named by ``server.fault`` (every request) or by a marker ``FAULT:<name>`` in the
  prompt (that passage only), where name is one of :data:`FAULTS`.

Use it as a context manager or through the ``llm_server`` fixture (import it into a test
module: ``from llm_server import llm_server_fixture  # noqa: F401``)::

    with FakeLLMServer() as server:
        settings = LLMSettings(base_url=server.base_url, model=server.model)
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

FAULTS = (
    "429_once",  # 429 with Retry-After: 1 on the first request for this prompt, then an answer
    "429",  # 429 with Retry-After: 0, every time
    "429_hour",  # 429 with Retry-After: 3600
    "500",  # 500 every time
    "500_once",  # 500 on the first request for this prompt, then an answer
    "500_echo",  # 500 whose message repeats the Authorization header (servers that echo the key)
    "slow",  # the answer comes after ``slow_s`` seconds
    "non_json",  # prose without any question
    "empty",  # empty message content
    "not_completion",  # HTTP 200 with a JSON body that is not a chat completion
)
_MARKER = re.compile(r"FAULT:([a-z0-9_]+)")
_N_ASKED = re.compile(r"Write (\d+)")


def canned_questions(prompt: str, n: int) -> list[str]:
    """The questions the server answers for ``prompt``: distinct per prompt, n of them."""
    tag = hashlib.sha1(prompt.encode()).hexdigest()[:8]
    return [f"What does record {tag} say about point {i + 1}?" for i in range(n)]


class FakeLLMServer:
    """See the module docstring.

    Attributes:
        model: The one model it serves.
        api_key: When set, the key every request must carry.
        fault: A fault for every request (one of :data:`FAULTS`), or None.
        delay_s: Seconds every answer waits (to make parallel requests overlap).
        slow_s: Seconds a "slow" answer waits.
        answer_format: "json" | "fenced" | "object" | "numbered".
        requests: POST requests received (all of them, faults included).
        max_concurrent: Most POST requests in flight at once.
        prompts: The prompt of every POST request, in arrival order.
        arrivals: Prompt -> arrival times (time.monotonic()) of the requests carrying it.
        auth_headers: The Authorization header of every POST request.
    """

    def __init__(
        self, model: str = "fake-model", api_key: str | None = None, delay_s: float = 0.0, slow_s: float = 3.0
    ):
        self.model = model
        self.api_key = api_key
        self.fault: str | None = None
        self.delay_s = delay_s
        self.slow_s = slow_s
        self.answer_format = "json"
        self.requests = 0
        self.max_concurrent = 0
        self.prompts: list[str] = []
        self.arrivals: dict[str, list[float]] = {}
        self.auth_headers: list[str] = []
        self._current = 0
        self._seen: dict[str, int] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "start() the server first"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> FakeLLMServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                if self.path.rstrip("/") == "/v1/models":
                    server._send(
                        self, 200, {"object": "list", "data": [{"id": server.model, "object": "model"}]}
                    )
                else:
                    server._send_text(self, 404, "404 page not found")

            def do_POST(self):
                server._handle(self)

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        httpd.block_on_close = False
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closing.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def reset_counts(self) -> None:
        with self._lock:
            self.requests = 0
            self.max_concurrent = 0
            self.prompts.clear()
            self.arrivals.clear()
            self.auth_headers.clear()

    # ------------------------------------------------------------------ answers

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                handler.send_header(k, v)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
            pass

    @staticmethod
    def _send_text(handler: BaseHTTPRequestHandler, status: int, text: str) -> None:
        data = text.encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "text/plain")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    @staticmethod
    def _error(message: str, type_: str, code: str | None) -> dict:
        return {"error": {"message": message, "type": type_, "param": None, "code": code}}

    def _completion(self, content: str) -> dict:
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }

    def _format(self, questions: list[str]) -> str:
        if self.answer_format == "fenced":
            return "Here are the questions:\n```json\n" + json.dumps(questions, indent=2) + "\n```"
        if self.answer_format == "object":
            return json.dumps({"questions": [{"question": q} for q in questions]})
        if self.answer_format == "numbered":
            return "\n".join(f"{i + 1}. {q}" for i, q in enumerate(questions))
        return json.dumps(questions)

    def _sleep(self, seconds: float) -> None:
        self._closing.wait(seconds)

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = json.loads(h.rfile.read(length) or b"{}")
        prompt = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
        with self._lock:
            self.requests += 1
            self._current += 1
            self.max_concurrent = max(self.max_concurrent, self._current)
            self.prompts.append(prompt)
            self.arrivals.setdefault(prompt, []).append(time.monotonic())
            self.auth_headers.append(h.headers.get("Authorization", ""))
            seen = self._seen.get(prompt, 0)
            self._seen[prompt] = seen + 1
        try:
            if self.delay_s:
                self._sleep(self.delay_s)
            if h.path.rstrip("/") != "/v1/chat/completions":
                return self._send_text(h, 404, "404 page not found")
            if self.api_key is not None and h.headers.get("Authorization") != f"Bearer {self.api_key}":
                return self._send(
                    h,
                    401,
                    self._error(
                        "Incorrect API key provided. You can find your API key in your account settings.",
                        "invalid_request_error",
                        "invalid_api_key",
                    ),
                )
            if body.get("model") != self.model:
                return self._send(
                    h,
                    404,
                    self._error(
                        f"The model `{body.get('model')}` does not exist or you do not have access to it.",
                        "invalid_request_error",
                        "model_not_found",
                    ),
                )
            marker = _MARKER.search(prompt)
            fault = marker.group(1) if marker else self.fault
            if fault in ("429", "429_hour") or (fault == "429_once" and seen == 0):
                wait = {"429": "0", "429_hour": "3600", "429_once": "1"}[fault]
                return self._send(
                    h,
                    429,
                    self._error("Rate limit reached for requests.", "requests", "rate_limit_exceeded"),
                    {"Retry-After": wait},
                )
            if fault == "500" or (fault == "500_once" and seen == 0):
                return self._send(
                    h,
                    500,
                    self._error(
                        "The server had an error while processing your request.", "server_error", None
                    ),
                )
            if fault == "500_echo":
                auth = h.headers.get("Authorization", "")
                return self._send(
                    h, 500, self._error(f"Internal error for credentials {auth}", "server_error", None)
                )
            if fault == "slow":
                self._sleep(self.slow_s)
            if fault == "non_json":
                return self._send(
                    h,
                    200,
                    self._completion("Sure! This passage describes the maintenance schedule in some detail."),
                )
            if fault == "empty":
                return self._send(h, 200, self._completion(""))
            if fault == "not_completion":
                return self._send(h, 200, {"status": "ok"})
            m = _N_ASKED.search(prompt)
            n = int(m.group(1)) if m else 3
            return self._send(h, 200, self._completion(self._format(canned_questions(prompt, n))))
        finally:
            with self._lock:
                self._current -= 1


@pytest.fixture(name="llm_server")
def llm_server_fixture():
    """``llm_server``: a running FakeLLMServer, stopped after the test.

    Import ``llm_server_fixture`` into a test module to use it (the fixture's name differs from
    the function's, so test parameters named ``llm_server`` do not shadow an import).
    """
    with FakeLLMServer() as server:
        yield server

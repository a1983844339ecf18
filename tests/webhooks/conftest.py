import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from compliance.webhooks.events import event_types_parse
from compliance.webhooks.models import Subscription
from compliance.webhooks.sender import senders_close, webhooks_send
from compliance.webhooks.services import subscription_create, webhooks_dispatch


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A real HTTP receiver on 127.0.0.1. `answer(request)` gives the status code
    (200 unless a test says otherwise); only requests answered 2xx land in `got`."""

    port: int = 0
    answer: Callable[[Received], int] = lambda r: 200
    got: list[Received] = field(default_factory=list)
    seen: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    body: bytes = b"ok"
    keep_alive: bool = False  # HTTP/1.1 with kept-alive connections, else 1.0 (one each)
    connections: int = 0  # TCP connections accepted

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def event_ids(self) -> list[str]:
        with self.lock:
            return [r.headers["webhook-id"] for r in self.got]


def _serve(receiver: Receiver) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1" if receiver.keep_alive else "HTTP/1.0"

        def setup(self) -> None:
            super().setup()
            with receiver.lock:
                receiver.connections += 1

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            request = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            code = receiver.answer(request)
            with receiver.lock:
                receiver.seen.append(request)
                if 200 <= code < 300:
                    receiver.got.append(request)
            answer = receiver.body
            self.send_response(code)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            # the sender may stop reading (as it should, past its limit)
            with contextlib.suppress(OSError):
                self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", receiver.port), Handler)
    server.daemon_threads = True
    receiver.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def local_receivers_allowed(settings) -> None:
    settings.WEBHOOKS_ALLOW_HTTP = True
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = True


@pytest.fixture
def receiver(local_receivers_allowed) -> Iterator[Receiver]:
    r = Receiver()
    server = _serve(r)
    yield r
    server.shutdown()
    server.server_close()


@pytest.fixture
def receivers(local_receivers_allowed) -> Iterator[Callable[..., Receiver]]:
    """More receivers, each on its own port: `receivers(keep_alive=True)`."""
    servers: list[ThreadingHTTPServer] = []

    def make(**kwargs) -> Receiver:
        r = Receiver(**kwargs)
        servers.append(_serve(r))
        return r

    yield make
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def subscribe(db) -> Callable[..., tuple[Subscription, str]]:
    def make(url: str, events: list[str] | None = None, **kwargs) -> tuple[Subscription, str]:
        return subscription_create(
            url=url,
            events=event_types_parse(events or ["*"]),
            description=kwargs.get("description", ""),
            holds_copies=kwargs.get("holds_copies", False),
            actor="test",
        )

    return make


@pytest.fixture(autouse=True)
def _senders_closed() -> Iterator[None]:
    """Each test starts with no sender threads or kept-alive connections of another."""
    yield
    senders_close()


def drain(rounds: int = 5) -> None:
    """Dispatch and send until nothing is due now (retries later stay pending)."""
    for _ in range(rounds):
        webhooks_dispatch()
        if not webhooks_send(budget_seconds=2.0, linger_seconds=0):
            return

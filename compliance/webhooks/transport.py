"""The webhook sender's HTTP/1.1 client: one POST on a kept-alive connection to a
checked address, and the status code of the answer.

Why not urllib3 or http.client: the sender needs nothing of an answer but its status
code, and their request building and header parsing (email.parser) were most of the
sender's time: 380 µs of CPU a request through urllib3, 180 through http.client, 30
here (docs/benchmarks.md, webhooks). What it must still get right, and does:

- it connects only to the address `targets.target_check` resolved and checked (no
  lookup of its own); the URL's host goes in the Host header and, over TLS, in SNI and
  the certificate check (the default context: system CAs, hostname checked);
- it follows no redirect (a 3xx is an answer like any other);
- it reads at most HEAD_LIMIT bytes of status line and headers, and a body only when
  its Content-Length is at most BODY_LIMIT; any other answer (chunked, unknown length,
  larger) is judged by its status line and headers and its connection dropped, never
  drained;
- one request, from connect to the end of the answer, takes at most `timeout` seconds
  (not per read: a receiver trickling bytes does not extend it);
- a kept-alive connection the receiver closed meanwhile is noticed before it is used,
  and one that fails before the first byte of an answer is retried once on a new
  connection (the same request, so the same webhook-id: at least once allows it).
"""

import contextlib
import select
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from functools import cache
from urllib.parse import quote

from .targets import Target

HEAD_LIMIT = 64 * 1024  # bytes of status line and headers we read at most
BODY_LIMIT = 1024  # an answer's body is read (to keep its connection) up to this size
_RECV = 8192
READ_LIMIT = HEAD_LIMIT + _RECV  # the most one answer reads from its connection
_IDLE_SECONDS = 4.0  # below the 5 s after which common servers (Node) drop an idle one


class ProtocolError(Exception):
    """The receiver's answer is not HTTP/1.x we can read within the limits."""


@cache
def _tls() -> ssl.SSLContext:
    return ssl.create_default_context()


def request_target(path: str) -> str:
    """The path and query as sent on the request line: anything but printable ASCII
    percent-encoded (a URL's own escapes kept), as urllib3 sends it."""
    return quote(path, safe="!#$%&'()*+,-./:;=?@[]_~")


def host_header(target: Target) -> str:
    host = target.host.encode("idna").decode("ascii") if not target.host.isascii() else target.host
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    default = 443 if target.scheme == "https" else 80
    return host if target.port == default else f"{host}:{target.port}"


@dataclass(eq=False)
class Connection:
    key: tuple[str, str, int, str]
    sock: socket.socket
    used_at: float = 0.0

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def dropped(self) -> bool:
        """Whether the receiver closed it (or sent something unasked) while it was idle:
        readable with nothing asked means EOF or garbage, either way not reusable."""
        try:
            poll = select.poll()  # not select(): no limit on the descriptor's number
            poll.register(self.sock, select.POLLIN)
            return bool(poll.poll(0))
        except (OSError, ValueError):
            return True


def _connect(target: Target, deadline: float) -> Connection:
    key = (target.scheme, target.address, target.port, target.host)
    sock = socket.create_connection(
        (target.address, target.port), timeout=max(0.001, min(5.0, deadline - time.monotonic()))
    )
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if target.scheme == "https":
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            sock = _tls().wrap_socket(sock, server_hostname=target.host)
    except BaseException:
        sock.close()
        raise
    return Connection(key=key, sock=sock)


@dataclass
class Connections:
    """Idle kept-alive connections per (scheme, address, port, host), shared by the
    sender's threads and kept across its runs; at most `per_target` idle per target,
    none idle longer than _IDLE_SECONDS."""

    per_target: int
    idle: dict[tuple[str, str, int, str], list[Connection]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, target: Target) -> Connection | None:
        key = (target.scheme, target.address, target.port, target.host)
        now = time.monotonic()
        while True:
            with self.lock:
                stack = self.idle.get(key)
                if not stack:
                    return None
                connection = stack.pop()
            if now - connection.used_at < _IDLE_SECONDS and not connection.dropped():
                return connection
            connection.close()

    def give(self, connection: Connection) -> None:
        connection.used_at = time.monotonic()
        with self.lock:
            stack = self.idle.setdefault(connection.key, [])
            if len(stack) < self.per_target:
                stack.append(connection)
                return
        connection.close()

    def prune(self) -> None:
        """Close the connections idle too long (the receiver will have dropped them)."""
        now = time.monotonic()
        stale: list[Connection] = []
        with self.lock:
            for key, stack in list(self.idle.items()):
                keep = [c for c in stack if now - c.used_at < _IDLE_SECONDS]
                stale += [c for c in stack if now - c.used_at >= _IDLE_SECONDS]
                if keep:
                    self.idle[key] = keep
                else:
                    del self.idle[key]
        for connection in stale:
            connection.close()

    def close(self) -> None:
        with self.lock:
            stacks, self.idle = list(self.idle.values()), {}
        for stack in stacks:
            for connection in stack:
                connection.close()


@dataclass
class Answer:
    status: int
    keep: bool  # the connection may carry the next request


def _recv(sock: socket.socket, deadline: float) -> bytes:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("timed out")
    sock.settimeout(left)
    return sock.recv(_RECV)


class NoAnswer(ConnectionError):
    """The connection ended before the first byte of an answer."""


def _answer(sock: socket.socket, deadline: float) -> Answer:
    """Read one answer (skipping 1xx interim ones)."""
    try:
        buffer = _recv(sock, deadline)
    except ConnectionError as error:
        raise NoAnswer(str(error)) from error
    if not buffer:
        raise NoAnswer("closed before answering")
    while True:
        end = buffer.find(b"\r\n\r\n")
        while end < 0:
            if len(buffer) > HEAD_LIMIT:
                raise ProtocolError("response_headers_too_large")
            chunk = _recv(sock, deadline)
            if not chunk:
                raise ProtocolError("response_incomplete")
            buffer += chunk
            end = buffer.find(b"\r\n\r\n")
        if end > HEAD_LIMIT:
            raise ProtocolError("response_headers_too_large")
        head, buffer = buffer[:end], buffer[end + 4 :]
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or parts[0] not in (b"HTTP/1.1", b"HTTP/1.0") or len(parts[1]) != 3:
            raise ProtocolError("response_invalid")
        try:
            status = int(parts[1])
        except ValueError:
            raise ProtocolError("response_invalid") from None
        if 100 <= status < 200 and status != 101:
            continue  # 100 Continue, 103 Early Hints: the answer follows
        break
    keep = parts[0] == b"HTTP/1.1" and status != 101
    length: int | None = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            try:
                n = int(value.strip())
            except ValueError:
                raise ProtocolError("response_invalid") from None
            if n < 0 or (length is not None and n != length):
                raise ProtocolError("response_invalid")
            length = n
        elif name == b"transfer-encoding":
            keep = False  # chunked: its body is not read, so its connection is dropped
        elif name == b"connection" and b"close" in value.lower():
            keep = False
    if length is None or length > BODY_LIMIT:
        keep = False
    if keep and length is not None:
        while len(buffer) < length:
            chunk = _recv(sock, deadline)
            if not chunk:
                break
            buffer += chunk
        if len(buffer) != length:
            keep = False  # cut short, or bytes after the answer that nothing asked for
    return Answer(status=status, keep=keep)


def post(
    target: Target,
    request: bytes,
    connections: Connections,
    connection: Connection | None,
    *,
    timeout: float,
) -> tuple[Answer, Connection | None]:
    """Send `request` (a whole HTTP/1.1 request, see `request_bytes`) to `target` on
    `connection` (or a kept one, or a new one); the answer and the connection to use
    for the next request to the same target (None when it was dropped). Raises OSError
    (including timeouts and TLS errors) or ProtocolError; the connection is then closed.
    """
    deadline = time.monotonic() + timeout
    if connection is None:
        connection = connections.take(target)
    fresh = connection is None
    if connection is None:
        connection = _connect(target, deadline)
    while True:
        try:
            try:
                connection.sock.settimeout(max(0.001, deadline - time.monotonic()))
                connection.sock.sendall(request)
            except (ConnectionError, ssl.SSLEOFError, ssl.SSLZeroReturnError) as error:
                raise NoAnswer(str(error)) from error
            answer = _answer(connection.sock, deadline)
        except NoAnswer:
            connection.close()
            if fresh:
                raise
            # a kept-alive connection the receiver closed under us: once more, anew
            connection, fresh = _connect(target, deadline), True
            continue
        except BaseException:
            connection.close()
            raise
        if answer.keep:
            return answer, connection
        connection.close()
        return answer, None


class RequestHead:
    """What every POST of a lane to `target` begins with: the request line, Host and
    `headers` (ASCII names and values, no CR or LF), encoded once. Raises ValueError for
    a host or header that cannot be put on the wire."""

    def __init__(self, target: Target, headers: list[tuple[str, str]]) -> None:
        lines = [f"POST {request_target(target.path)} HTTP/1.1", f"Host: {host_header(target)}"]
        lines += [_header(name, value) for name, value in headers]
        self.head = ("\r\n".join(lines) + "\r\n").encode("ascii")

    def request(self, headers: list[tuple[str, str]], body: bytes) -> bytes:
        """The whole request: the head, `headers`, and `body` with its length."""
        tail = "".join(_header(name, value) + "\r\n" for name, value in headers)
        return self.head + f"{tail}Content-Length: {len(body)}\r\n\r\n".encode("ascii") + body


def _header(name: str, value: str) -> str:
    if "\r" in value or "\n" in value:
        raise ValueError("a header value with a line break")
    return f"{name}: {value}"


def request_bytes(target: Target, headers: list[tuple[str, str]], body: bytes) -> bytes:
    """A POST of `body` with `headers` (ASCII names and values, no CR or LF)."""
    return RequestHead(target, []).request(headers, body)

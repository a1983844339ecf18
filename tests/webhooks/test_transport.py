"""The sender's HTTP/1.1 client against scripted receivers: kept-alive connections and
when they are dropped, bounded reads, the request's total timeout, the Host header and
request line, and TLS to the URL's host at the checked address."""

import datetime
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from compliance.webhooks import transport
from compliance.webhooks.targets import Target
from compliance.webhooks.transport import Connections, ProtocolError, post, request_bytes

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@dataclass
class Scripted:
    """A TCP receiver on 127.0.0.1: for each request it reads (headers and a
    Content-Length body), `answer(connection, n)` writes what it likes (n counts the
    requests from 0) and says whether to keep the connection open."""

    answer: Callable[[socket.socket, int], bool]
    port: int = 0
    accepted: int = 0
    requests: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    wrap: Callable[[socket.socket], socket.socket] | None = None

    def target(self, host: str = "127.0.0.1", path: str = "/hook", scheme: str = "http") -> Target:
        return Target(scheme=scheme, host=host, port=self.port, path=path, address="127.0.0.1")


def _read_request(conn: socket.socket, buffer: bytes) -> tuple[bytes | None, bytes]:
    while b"\r\n\r\n" not in buffer:
        chunk = conn.recv(65536)
        if not chunk:
            return None, b""
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        rest += conn.recv(65536)
    return head + b"\r\n\r\n" + rest[:length], rest[length:]


@pytest.fixture
def scripted() -> Iterator[Callable[..., Scripted]]:
    listeners: list[socket.socket] = []

    def start(answer: Callable[[socket.socket, int], bool], **kwargs) -> Scripted:
        receiver = Scripted(answer=answer, **kwargs)
        listener = socket.create_server(("127.0.0.1", 0))
        listeners.append(listener)
        receiver.port = listener.getsockname()[1]

        def serve_one(conn: socket.socket) -> None:
            buffer = b""
            with conn:
                while True:
                    try:
                        request, buffer = _read_request(conn, buffer)
                    except OSError:
                        return
                    if request is None:
                        return
                    with receiver.lock:
                        n = len(receiver.requests)
                        receiver.requests.append(request)
                    try:
                        if not receiver.answer(conn, n):
                            return
                    except OSError:
                        return

        def accept() -> None:
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                with receiver.lock:
                    receiver.accepted += 1
                if receiver.wrap is not None:
                    try:
                        conn = receiver.wrap(conn)
                    except (OSError, ssl.SSLError):
                        conn.close()
                        continue
                threading.Thread(target=serve_one, args=(conn,), daemon=True).start()

        threading.Thread(target=accept, daemon=True).start()
        return receiver

    yield start
    for listener in listeners:
        listener.close()


def _answers(*raw: bytes, keep: bool = True) -> Callable[[socket.socket, int], bool]:
    def answer(conn: socket.socket, n: int) -> bool:
        conn.sendall(raw[min(n, len(raw) - 1)])
        return keep

    return answer


def _post(receiver: Scripted, connections: Connections, held=None, target=None, timeout=5.0):
    target = target or receiver.target()
    request = request_bytes(target, [("webhook-id", "evt_1")], b'{"a":1}')
    return post(target, request, connections, held, timeout=timeout)


def test_a_kept_alive_connection_carries_the_next_request(scripted):
    receiver = scripted(_answers(OK))
    connections = Connections(per_target=4)
    answer, held = _post(receiver, connections)
    assert answer.status == 200 and held is not None
    answer, held = _post(receiver, connections, held)
    assert answer.status == 200 and held is not None
    connections.give(held)
    answer, held = _post(receiver, connections)  # from the kept ones
    assert answer.status == 200
    assert receiver.accepted == 1 and len(receiver.requests) == 3


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\n\r\nuntil the connection closes",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000,
    ],
    ids=["chunked", "connection-close", "http-1.0", "no-length", "longer-than-read"],
)
def test_an_answer_whose_body_is_not_read_drops_its_connection(scripted, raw):
    receiver = scripted(_answers(raw))
    connections = Connections(per_target=4)
    answer, held = _post(receiver, connections)
    assert answer.status == 200 and held is None
    answer, held = _post(receiver, connections)
    assert answer.status == 200
    assert receiver.accepted == 2


def test_interim_answers_are_skipped(scripted):
    receiver = scripted(
        _answers(
            b"HTTP/1.1 100 Continue\r\n\r\n"
            b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
            b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"
        )
    )
    answer, held = _post(receiver, Connections(per_target=4))
    assert answer.status == 204 and held is not None


def test_a_redirect_is_an_answer_not_followed(scripted):
    receiver = scripted(
        _answers(b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://169.254.169.254/\r\n\r\n")
    )
    answer, _ = _post(receiver, Connections(per_target=4))
    assert answer.status == 307
    assert receiver.accepted == 1 and len(receiver.requests) == 1


def test_headers_past_the_limit_are_refused_having_read_at_most_the_limit(scripted, monkeypatch):
    received: list[int] = []
    original = transport._recv

    def recv(sock, deadline):
        chunk = original(sock, deadline)
        received.append(len(chunk))
        return chunk

    monkeypatch.setattr(transport, "_recv", recv)
    endless = b"HTTP/1.1 200 OK\r\n" + b"X-Filler: " + b"a" * (4 * transport.HEAD_LIMIT)
    receiver = scripted(_answers(endless))
    with pytest.raises(ProtocolError, match="response_headers_too_large"):
        _post(receiver, Connections(per_target=4))
    assert sum(received) <= transport.READ_LIMIT


@pytest.mark.parametrize(
    "raw",
    [b"garbage\r\n\r\n", b"HTTP/1.1 2x0 OK\r\n\r\n", b"HTTP/2 200\r\n\r\n"],
    ids=["not-http", "bad-status", "not-1.x"],
)
def test_an_answer_that_is_not_http_1_is_a_protocol_error(scripted, raw):
    receiver = scripted(_answers(raw))
    with pytest.raises(ProtocolError, match="response_invalid"):
        _post(receiver, Connections(per_target=4))


def test_a_receiver_that_trickles_is_cut_at_the_request_timeout(scripted):
    """A per-read timeout would never fire: a byte comes every 0.2 s."""

    def trickle(conn: socket.socket, n: int) -> bool:
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100:
            conn.sendall(bytes([byte]))
            time.sleep(0.2)
        return False

    receiver = scripted(trickle)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        _post(receiver, Connections(per_target=4), timeout=1.0)
    assert time.monotonic() - started < 2.0


def test_a_kept_connection_the_receiver_closed_is_replaced_once(scripted):
    """The receiver closes after each answer without saying so: the next request on
    that connection gets no answer, and is sent once more on a new connection."""
    receiver = scripted(_answers(OK, keep=False))
    connections = Connections(per_target=4)
    answer, held = _post(receiver, connections)
    assert answer.status == 200 and held is not None
    time.sleep(0.1)
    answer, held = _post(receiver, connections, held)
    assert answer.status == 200
    assert receiver.accepted == 2 and len(receiver.requests) == 2


def test_an_idle_kept_connection_the_receiver_closed_is_not_taken(scripted):
    receiver = scripted(_answers(OK, keep=False))
    connections = Connections(per_target=4)
    _, held = _post(receiver, connections)
    connections.give(held)
    time.sleep(0.1)
    answer, _ = _post(receiver, connections)
    assert answer.status == 200
    assert receiver.accepted == 2 and len(receiver.requests) == 2


def test_a_new_connection_closed_without_an_answer_is_an_error_not_retried(scripted):
    receiver = scripted(lambda conn, n: False)
    with pytest.raises(ConnectionError):
        _post(receiver, Connections(per_target=4))
    assert receiver.accepted == 1 and len(receiver.requests) == 1


def test_the_request_names_the_urls_host_and_an_encoded_path(scripted):
    receiver = scripted(_answers(OK))
    target = receiver.target(host="receiver.example.com", path="/hooks/café?x=1&y=a b")
    _post(receiver, Connections(per_target=4), target=target)
    head = receiver.requests[0].split(b"\r\n")
    assert head[0] == b"POST /hooks/caf%C3%A9?x=1&y=a%20b HTTP/1.1"
    assert f"Host: receiver.example.com:{receiver.port}".encode() in head
    assert b"Content-Length: 7" in head


def test_a_header_value_with_a_line_break_is_refused():
    target = Target(scheme="http", host="h", port=80, path="/", address="127.0.0.1")
    with pytest.raises(ValueError):
        request_bytes(target, [("webhook-id", "evt_1\r\nX-Injected: 1")], b"{}")


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for receiver.example.com (its own authority)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "receiver.example.com")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("receiver.example.com")]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_tls_goes_to_the_checked_address_with_the_urls_host_as_server_name(
    scripted, certificate, monkeypatch
):
    cert_path, key_path = certificate
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_path, key_path)
    names: list[str | None] = []
    server.sni_callback = lambda sock, name, context: names.append(name)
    client = ssl.create_default_context(cafile=str(cert_path))
    monkeypatch.setattr(transport, "_tls", lambda: client)
    receiver = scripted(_answers(OK), wrap=lambda conn: server.wrap_socket(conn, server_side=True))
    connections = Connections(per_target=4)

    answer, held = _post(
        receiver, connections, target=receiver.target("receiver.example.com", scheme="https")
    )
    assert answer.status == 200 and held is not None
    assert names == ["receiver.example.com"]
    assert f"Host: receiver.example.com:{receiver.port}".encode() in receiver.requests[0]

    # the same address under another name: its certificate does not name it
    with pytest.raises(ssl.SSLCertVerificationError):
        _post(receiver, connections, target=receiver.target("other.example.com", scheme="https"))

"""Server-side request forgery: URLs that resolve to anything but public addresses are
refused at registration and at delivery, and a delivery connects to the address it
checked."""

import pytest

from compliance.webhooks import targets
from compliance.webhooks.models import Delivery
from compliance.webhooks.sender import webhooks_send
from compliance.webhooks.services import subscription_ping
from tests.conftest import postgres_only

pytestmark = [postgres_only()]

PUBLIC = "93.184.216.34"


@pytest.fixture
def strict(settings) -> None:
    settings.WEBHOOKS_ALLOW_HTTP = False
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = False


def _dns(monkeypatch, answers: dict[str, list[str]]) -> list[str]:
    asked: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        return answers[host]

    monkeypatch.setattr(targets, "resolve", resolve)
    return asked


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link local"),  # the cloud metadata service
        ("100.64.0.1", "cgnat"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 - an address refused, nothing bound
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("::1", "loopback"),
        ("fd00::1", "unique local"),
        ("fe80::1", "link local"),
        ("::ffff:127.0.0.1", "ipv4 mapped"),
        ("::ffff:8.8.8.8", "ipv4 mapped"),
        ("::", "unspecified"),
        ("64:ff9b::a00:1", "nat64"),
    ],
)
@pytest.mark.django_db
def test_registration_refuses_a_host_that_resolves_to(
    api_client_with_scopes, strict, monkeypatch, address, why
):
    _dns(monkeypatch, {"hooks.example.com": [PUBLIC, address]})
    response = api_client_with_scopes("webhooks:write").post(
        "/api/v1/webhooks",
        {"url": "https://hooks.example.com/in", "events": ["*"]},
        format="json",
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "webhook_url_not_allowed"
    assert why in error["message"]


@pytest.mark.parametrize(
    "url", ["https://127.0.0.1/x", "https://[::1]/x", "https://169.254.169.254/latest/meta-data"]
)
@pytest.mark.django_db
def test_registration_refuses_address_literals(api_client_with_scopes, strict, url):
    response = api_client_with_scopes("webhooks:write").post(
        "/api/v1/webhooks", {"url": url, "events": ["*"]}, format="json"
    )
    assert response.json()["error"]["code"] == "webhook_url_not_allowed"


@pytest.mark.django_db
def test_http_is_refused_unless_allowed(api_client_with_scopes, strict, monkeypatch):
    _dns(monkeypatch, {"hooks.example.com": [PUBLIC]})
    client = api_client_with_scopes("webhooks:write")
    body = {"url": "http://hooks.example.com/in", "events": ["*"]}
    assert client.post("/api/v1/webhooks", body, format="json").json()["error"]["code"] == (
        "webhook_url_scheme"
    )
    https = {**body, "url": "https://hooks.example.com/in"}
    assert client.post("/api/v1/webhooks", https, format="json").status_code == 201


@pytest.mark.django_db
def test_an_unresolvable_host_is_a_400(api_client_with_scopes, strict):
    response = api_client_with_scopes("webhooks:write").post(
        "/api/v1/webhooks", {"url": "https://nowhere.invalid/x", "events": ["*"]}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "webhook_url_unresolvable"


@pytest.mark.django_db(transaction=True)
def test_a_dns_answer_that_changes_after_registration_is_refused_at_delivery(
    receiver, subscribe, settings, monkeypatch
):
    """Registered while the name pointed to a public address; by delivery it points to
    the loopback (where the receiver listens): nothing reaches it."""
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = False
    answers = {"rebind.example.com": [PUBLIC]}
    _dns(monkeypatch, answers)
    subscription, _ = subscribe(f"http://rebind.example.com:{receiver.port}/hook")
    answers["rebind.example.com"] = ["127.0.0.1"]
    subscription_ping(subscription=subscription, actor="t")
    webhooks_send(budget_seconds=1.0)

    assert receiver.seen == []
    delivery = Delivery.objects.get()
    assert delivery.status == "pending" and delivery.last_error == "webhook_url_not_allowed"


@pytest.mark.django_db(transaction=True)
def test_delivery_connects_to_the_checked_address_with_the_host_header(
    receiver, subscribe, monkeypatch
):
    """One lookup per attempt: the connection goes to the address that was checked,
    the hostname only in the Host header (a second lookup of this name would fail)."""
    asked = _dns(monkeypatch, {"receiver.example.com": ["127.0.0.1"]})
    subscription, _ = subscribe(f"http://receiver.example.com:{receiver.port}/hook")
    asked.clear()
    subscription_ping(subscription=subscription, actor="t")
    webhooks_send(budget_seconds=1.0)

    assert len(receiver.got) == 1
    assert receiver.got[0].headers["host"] == f"receiver.example.com:{receiver.port}"
    assert asked == ["receiver.example.com"]


@pytest.mark.django_db(transaction=True)
def test_redirects_are_not_followed(receiver, subscribe):
    subscription, _ = subscribe(receiver.url)
    receiver.answer = lambda r: 307
    subscription_ping(subscription=subscription, actor="t")
    webhooks_send(budget_seconds=1.0)
    assert len(receiver.seen) == 1
    delivery = Delivery.objects.get()
    assert delivery.status == "pending" and delivery.last_status_code == 307


@pytest.mark.django_db(transaction=True)
def test_a_huge_answer_is_not_read_past_the_limit(receiver, subscribe, monkeypatch):
    """The receiver answers 8 MiB: the sender takes the status line and headers and
    drops the connection, reading at most one buffer past the headers' limit."""
    from compliance.webhooks import transport

    received: list[int] = []
    original = transport._recv

    def recv(sock, deadline):
        chunk = original(sock, deadline)
        received.append(len(chunk))
        return chunk

    monkeypatch.setattr(transport, "_recv", recv)
    receiver.body = b"x" * (8 * 1024 * 1024)
    subscription, _ = subscribe(receiver.url)
    subscription_ping(subscription=subscription, actor="t")
    webhooks_send(budget_seconds=1.0)

    assert Delivery.objects.get().status == "delivered"
    assert received
    assert sum(received) <= transport.READ_LIMIT < len(receiver.body) // 100

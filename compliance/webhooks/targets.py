"""Where a webhook may be sent: the guard against server-side request forgery.

A subscriber chooses the URL, so without a check Earshot would POST, from inside its
network, to whatever the URL names: the cloud metadata service, a database's HTTP port,
an admin page on localhost. Every address the host resolves to must be a public one,
at registration and again at each delivery; the delivery then connects to the address
it checked (no second lookup, which DNS rebinding would answer differently).
"""

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

from compliance.core.errors import ApplicationError, field_error

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def address_class(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why `ip` is not a public address (a stable word), or None when it is."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return "ipv4_mapped"
        if ip in _NAT64:
            return "nat64"
        if ip in ipaddress.ip_network("fc00::/7"):
            return "unique_local"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return "cgnat"
    if ip.is_link_local:
        return "link_local"  # 169.254.169.254, the metadata service, is one
    if ip.is_multicast:
        return "multicast"
    if ip.is_reserved:
        return "reserved"
    if ip.is_private:
        return "private"
    if not ip.is_global:
        return "reserved"
    return None


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # as written in the URL: the Host header and the TLS server name
    port: int
    path: str  # path and query, as sent in the request line
    address: str  # the checked IP to connect to


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (tests replace this to play DNS)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _refuse(code: str, message: str) -> ApplicationError:
    return ApplicationError(code, message, fields=field_error("url", code, message))


def url_parse(url: str) -> tuple[str, str, int, str]:
    """Scheme, host, port and path of an acceptable URL, or a 400."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise _refuse("webhook_url_invalid", "Not a valid URL.") from error
    allowed = ("https", "http") if settings.WEBHOOKS_ALLOW_HTTP else ("https",)
    if parts.scheme not in allowed:
        raise _refuse("webhook_url_scheme", "Webhook URLs must use https.")
    if not parts.hostname or parts.username is not None or parts.password is not None:
        raise _refuse("webhook_url_invalid", "A URL with a host and no user or password.")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise _refuse("webhook_url_invalid", "Not a valid URL.")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), path


def target_check(url: str) -> Target:
    """Resolve `url`'s host once and check every address; the target to connect to.
    Raises an ApplicationError (400) naming why a URL is refused."""
    scheme, host, port, path = url_parse(url)
    try:
        addresses = resolve(host, port)
    except (OSError, UnicodeError) as error:
        raise _refuse("webhook_url_unresolvable", "The URL's host does not resolve.") from error
    if not addresses:
        raise _refuse("webhook_url_unresolvable", "The URL's host does not resolve.")
    if not settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS:
        for address in addresses:
            why = address_class(ipaddress.ip_address(address.split("%")[0]))
            if why is not None:
                raise _refuse(
                    "webhook_url_not_allowed",
                    f"The URL's host resolves to a {why.replace('_', ' ')} address.",
                )
    return Target(scheme=scheme, host=host, port=port, path=path, address=addresses[0])

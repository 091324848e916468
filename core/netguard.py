"""The private-network guard for every outbound URL Kiln builds from user input.

Provider base URLs and git remotes are resolved and refused when any address is not a
public (global) one — loopback, private ranges, link-local (cloud metadata), CGNAT,
multicast, reserved — unless `KILN_ALLOW_PRIVATE_NETWORKS` is on. IPv4 written in odd
forms (`0x7f000001`, `2130706433`, `127.1`) resolves to the same address and is caught
by the same check. DNS can change between this check and the connection (rebinding);
run Kiln behind an egress proxy where that matters.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings

from core.exceptions import ValidationFailed

CGNAT = ipaddress.ip_network("100.64.0.0/10")


class HostNotAllowed(ValidationFailed):
    default_code = "remote_host_not_allowed"


def address_is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in CGNAT:
        return False
    return ip.is_global and not ip.is_multicast


def check_host(host: str, port: int | None = None, *, field: str = "url") -> None:
    """Raise `HostNotAllowed` unless every address of `host` is public (or the setting allows)."""
    if settings.KILN_ALLOW_PRIVATE_NETWORKS:
        return
    if not host:
        raise HostNotAllowed("The URL has no host.", extra={"fields": {field: ["Missing host."]}})
    try:
        infos = socket.getaddrinfo(host, port or 443, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise HostNotAllowed(
            f"The host '{host}' cannot be resolved.", extra={"fields": {field: ["Unknown host."]}}
        ) from exc
    for info in infos:
        address = str(info[4][0])
        if not address_is_public(address):
            raise HostNotAllowed(
                f"The host '{host}' resolves to a private or reserved address; outbound calls there are not allowed "
                "(set KILN_ALLOW_PRIVATE_NETWORKS to permit them).",
                extra={"fields": {field: ["Private or reserved address."]}},
            )


def check_url(url: str, *, field: str = "url") -> None:
    parts = urlsplit(url)
    check_host(parts.hostname or "", parts.port, field=field)

"""IPv6 spellings of IPv4 addresses are classified by the IPv4 address they lead to; fec0::/10 is refused."""

from __future__ import annotations

import pytest

from gateway_server.backends import CallContext, make_backend
from gateway_server.backends.guard import Guard, Refused, classify
from gateway_server.backends.http import HttpClient
from gateway_server.backends.rest import result_text


def _teredo(client: str, server: str = "65.54.227.120") -> str:
    """The Teredo address of ``client`` behind ``server`` (the client is stored bit-inverted)."""
    import ipaddress

    value = (0x20010000 << 96) | (int(ipaddress.IPv4Address(server)) << 64) \
        | (0xFFFFFFFF ^ int(ipaddress.IPv4Address(client)))
    return str(ipaddress.IPv6Address(value))


@pytest.mark.parametrize("address,kind", [
    ("64:ff9b::7f00:1", "internal"),              # NAT64 of 127.0.0.1
    ("64:ff9b::a00:5", "internal"),               # NAT64 of 10.0.0.5
    ("64:ff9b::a9fe:a9fe", "metadata"),           # NAT64 of 169.254.169.254
    ("64:ff9b::808:808", "public"),               # NAT64 of 8.8.8.8
    ("64:ff9b:1::7f00:1", "internal"),            # local-use NAT64, /96 spelling
    ("64:ff9b:1:a9fe:a9:fe00::", "metadata"),     # local-use NAT64, RFC 6052 /48 spelling
    ("64:ff9b:1::808:808", "internal"),           # local-use prefix: never public
    ("2002:7f00:1::", "internal"),                # 6to4 of 127.0.0.1
    ("2002:a9fe:a9fe::1", "metadata"),            # 6to4 of 169.254.169.254
    ("2002:a9fe:101::", "link-local"),            # 6to4 of 169.254.1.1
    ("::127.0.0.1", "internal"),                  # IPv4-compatible
    ("::169.254.169.254", "metadata"),
    ("::ffff:10.1.2.3", "internal"),              # IPv4-mapped
    ("::ffff:169.254.169.254", "metadata"),
    (_teredo("127.0.0.1"), "internal"),
    (_teredo("169.254.169.254"), "metadata"),
    ("fec0::1", "site-local"),
    ("feff::1", "site-local"),
    ("::1", "internal"),
    ("::", "internal"),
    ("2606:4700:4700::1111", "public"),
])
def test_classify_ipv6_by_the_embedded_ipv4(address, kind):
    assert classify(address) == kind


class _Dns(Guard):
    """A guard whose DNS answers with fixed addresses (the test needs no IPv6 route)."""

    def __init__(self, addresses, **kwargs):
        super().__init__(**kwargs)
        self.addresses = addresses

    def _resolve(self, host, port):
        return list(self.addresses)


def test_site_local_and_embedded_metadata_are_refused_even_when_literal():
    with pytest.raises(Refused, match="deprecated site-local"):
        _Dns(["fec0::5"]).check("old.example", 80, literal=True)
    with pytest.raises(Refused, match="link-local/metadata"):
        _Dns(["64:ff9b::a9fe:a9fe"]).check("nat64.example", 80, literal=True)


def test_a_client_named_nat64_loopback_is_refused_end_to_end():
    tool = {"name": "fetch", "endpoint": "http://{{ args.host }}/x", "args": [{"name": "host", "position": "body"}]}
    for spelling in ("[64:ff9b::7f00:1]", "[2002:7f00:1::]", "[::127.0.0.1]"):
        server = make_backend("rest", name="svc", server={"name": "svc"}, tools=[tool], document={},
                              client=HttpClient())
        result = server.call_tool("fetch", {"host": spelling}, CallContext())
        assert result["isError"] is True, (spelling, result)
        assert result_text(result).startswith(f"refused: {spelling.strip('[]')} is a loopback/private address"), result

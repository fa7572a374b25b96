"""A locally bound gateway accepts only loopback ``Host`` headers, matched exactly (DNS rebinding)."""

from __future__ import annotations

import pytest
import requests

from gateway_server.origin import host_allowed, is_local_bind

ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
PING = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}


@pytest.mark.parametrize("host", ["localhost", "localhost:5235", "127.0.0.1", "127.0.0.1:80", "127.9.8.7:1",
                                  "[::1]", "[::1]:5235", "LOCALHOST"])
def test_loopback_hosts_are_local(host):
    assert host_allowed(host, local_bind=True)


@pytest.mark.parametrize("host", ["127.attacker.example", "127.attacker.example:5235", "127.0.0.1.nip.io",
                                  "localhost.attacker.example", "127.0.0.1:x", "[::1]evil",
                                  "[::1", "0x7f000001", "127.1", "example.com", "[::ffff:8.8.8.8]"])
def test_names_that_only_look_local_are_not(host):
    assert not host_allowed(host, local_bind=True)
    assert host_allowed(host, local_bind=False)  # a public gateway checks Origin, not Host


def test_only_loopback_binds_are_local():
    assert is_local_bind("127.0.0.1") and is_local_bind("::1") and is_local_bind("localhost")
    assert not is_local_bind("127.attacker.example") and not is_local_bind("0.0.0.0")


@pytest.mark.parametrize("host", ["127.attacker.example", "127.attacker.example:5235"])
def test_gateway_refuses_a_rebinding_host(shared_gateway, host):
    gw = shared_gateway
    resp = requests.post(gw.mcp_url(), json=PING, headers={**ACCEPT, "Host": host}, timeout=5)
    assert resp.status_code == 421 and "not served" in resp.json()["error"]["message"]
    ok = requests.post(gw.mcp_url(), json=PING, headers={**ACCEPT, "Host": f"localhost:{gw.port}"}, timeout=5)
    assert ok.status_code == 200

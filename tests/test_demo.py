"""``mcpgw demo``: starts everything on free ports, the URLs answer, Ctrl-C stops every child."""

from __future__ import annotations

import os
import signal
import socket
import sys
from pathlib import Path

import pytest
import requests

from gateway_server.demo.run import demo_document, prepare
from mcpgw_sdk.opening import open_store
from tests.helpers import free_port, wait_for, wait_http

MCPGW = str(Path(sys.executable).parent / "mcpgw")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _mcp(url: str, session: str | None, message: dict) -> requests.Response:
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    if session:
        headers["Mcp-Session-Id"] = session
    return requests.post(url, json=message, headers=headers, timeout=10)


def test_demo_starts_everything_and_ctrl_c_stops_it(procs, tmp_path):
    port, backend, api, console = (free_port() for _ in range(4))
    db = f"sqlite:///{tmp_path / 'demo.db'}"
    proc = procs.start([MCPGW, "demo", "--db", db, "--port", str(port), "--backend-port", str(backend),
                        "--api-port", str(api), "--console-port", str(console)],
                       env={"MCPGW_ADMIN_PASSWORD": "demo-secret-1"}, name="demo")
    out = wait_for(lambda: "Client config" in proc.output() and proc.output(), timeout=120,
                   what="mcpgw demo to print its URLs")
    mcp_url = f"http://127.0.0.1:{port}/gateway/demo/mcp"
    assert mcp_url in out and f"http://127.0.0.1:{port}/gateway/demo/sse" in out
    assert f'"url": "{mcp_url}"' in out  # Cursor
    claude = out[out.index("Claude Desktop"):]
    assert '"mcp-remote"' in claude and f'"{mcp_url}"' in claude  # Claude Desktop starts local servers only
    assert "demo-secret-1" not in out  # a chosen password is never printed

    assert requests.get(f"http://127.0.0.1:{backend}/users", timeout=5).json()["count"] == 3
    assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    assert requests.get(f"http://127.0.0.1:{api}/api/v1/openapi.json", timeout=5).status_code == 200
    assert requests.get(f"http://127.0.0.1:{console}/", timeout=5).status_code == 200

    init = _mcp(mcp_url, None, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}})
    session = init.headers["Mcp-Session-Id"]
    _mcp(mcp_url, session, {"jsonrpc": "2.0", "method": "notifications/initialized"})
    call = _mcp(mcp_url, session, {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                                   "params": {"name": "get_user", "arguments": {"email": "ada@example.com"}}})
    assert call.json()["result"]["structuredContent"]["name"] == "Ada Lovelace"

    store = open_store(db)
    try:
        assert store.authenticate("admin", "demo-secret-1").role == "admin"
    finally:
        store.close()

    children = _children(proc.popen.pid)
    assert len(children) == 4  # backend, gateway, API, console
    proc.popen.send_signal(signal.SIGINT)
    assert proc.popen.wait(30) == 0
    assert [pid for pid in children if _alive(pid)] == []
    for url in (f"http://127.0.0.1:{backend}/users", f"http://127.0.0.1:{port}/healthz"):
        try:
            requests.get(url, timeout=2)
        except requests.ConnectionError:
            continue
        raise AssertionError(f"{url} still answers after the demo stopped")


def test_prepare_stores_the_document_and_generates_a_password_once(tmp_path, monkeypatch):
    monkeypatch.delenv("MCPGW_ADMIN_PASSWORD", raising=False)
    db = f"sqlite:///{tmp_path / 'prep.db'}"
    password = prepare(db, "http://127.0.0.1:9999")
    assert password and len(password) >= 12
    assert prepare(db, "http://127.0.0.1:9998") is None  # the admin exists: nothing new to print
    store = open_store(db)
    try:
        assert store.authenticate("admin", password).name == "admin"
        doc = store.get_document("default", "demo-users")
        assert doc.content["servers"][0]["config"]["baseUrl"] == "http://127.0.0.1:9998"
        assert doc.content["routers"][0]["prefix"] == "/gateway/demo"
    finally:
        store.close()
    assert demo_document("http://h:1/")["servers"][0]["config"]["baseUrl"] == "http://h:1"


def test_prepare_never_overwrites_the_users_version(tmp_path, monkeypatch):
    monkeypatch.setenv("MCPGW_ADMIN_PASSWORD", "x-secret-3")
    db = f"sqlite:///{tmp_path / 'mine.db'}"
    prepare(db, "http://127.0.0.1:9999")
    store = open_store(db)
    try:
        mine = store.get_document("default", "demo-users").content
        mine["tools"][0]["description"] = "My own words"
        store.save_document(mine, author="admin", base_version=1)
        notes: list[str] = []
        prepare(db, "http://127.0.0.1:9998", notes=notes)
        doc = store.get_document("default", "demo-users")
        assert (doc.version, doc.updated_by, doc.content["tools"][0]["description"]) == (2, "admin", "My own words")
        assert notes and notes[0].startswith("Kept your edits of default/demo-users (version 2 by admin).")
        assert "http://127.0.0.1:9998" in notes[0]
        store.delete_document("default", "demo-users", author="admin")
        notes.clear()
        prepare(db, "http://127.0.0.1:9998", notes=notes)
        assert store.get_document("default", "demo-users", include_deleted=True).deleted
        assert "is deleted (version 3)" in notes[0]
    finally:
        store.close()


def test_demo_restart_keeps_an_edit(procs, tmp_path):
    db = f"sqlite:///{tmp_path / 'again.db'}"

    def run_demo(name: str) -> str:
        proc = procs.start([MCPGW, "demo", "--db", db, "--port", str(free_port()), "--backend-port",
                            str(free_port()), "--no-api", "--no-console"],
                           env={"MCPGW_ADMIN_PASSWORD": "demo-secret-2"}, name=name)
        out = wait_for(lambda: "Client config" in proc.output() and proc.output(), timeout=120,
                       what=f"{name} to print its URLs")
        proc.popen.send_signal(signal.SIGINT)
        assert proc.popen.wait(30) == 0
        return out

    run_demo("demo-1")
    store = open_store(db)
    try:
        content = store.get_document("default", "demo-users").content
        content["tools"][0]["description"] = "Edited by me"
        edited = store.save_document(content, author="admin", base_version=1)
        out = run_demo("demo-2")  # another backend port: the demo's own version would be refreshed
        doc = store.get_document("default", "demo-users")
        assert doc.version == edited.version and doc.updated_by == "admin"
        assert doc.content["tools"][0]["description"] == "Edited by me"
        assert store.list_versions("default", "demo-users")[0].author == "admin"
        assert "Kept your edits of default/demo-users" in out
    finally:
        store.close()


def test_demo_refuses_a_port_in_use_before_touching_the_database(procs, tmp_path):
    db_file = tmp_path / "f.db"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        taken = busy.getsockname()[1]
        proc = procs.start([MCPGW, "demo", "--db", f"sqlite:///{db_file}", "--port", str(free_port()),
                            "--backend-port", str(taken), "--no-api", "--no-console"],
                           env={"MCPGW_ADMIN_PASSWORD": "x-secret-2"}, name="demo-fail")
        code = proc.popen.wait(60)
    assert code == 1
    out = proc.output()
    assert f"Error: 127.0.0.1:{taken} is in use (the demo backend's port" in out
    assert "--backend-port" in out and "Traceback" not in out and "is running" not in out
    assert not db_file.exists()  # a running demo's document is left alone
    assert not _children(proc.popen.pid)


def test_demo_does_not_take_another_servers_answer_for_its_child(tmp_path):
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from gateway_server.demo.run import Child, _wait_ready
    from mcpgw_sdk.errors import McpgwError

    child = Child("gateway", [sys.executable, "-c", "import time; time.sleep(60)"], env=dict(os.environ),
                  logs=tmp_path)

    class OtherDemo(BaseHTTPRequestHandler):
        def do_GET(self):
            # Our child fails to bind while the other demo answers on the port it wanted.
            child.popen.terminate()
            child.popen.wait(10)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    other = HTTPServer(("127.0.0.1", 0), OtherDemo)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{other.server_address[1]}/healthz"
        with pytest.raises(McpgwError, match="gateway exited with code"):
            _wait_ready(child, url, 10, threading.Event())
    finally:
        child.stop()
        other.shutdown()
        other.server_close()


def test_demo_backend_serves_its_routes(procs):
    port = free_port()
    procs.start([sys.executable, "-m", "gateway_server.demo.backend", "--port", str(port)], name="backend")
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/users", status=200)
    created = requests.post(f"{base}/users", json={"email": "new@example.com", "name": "New"}, timeout=5)
    assert created.status_code == 201
    assert requests.post(f"{base}/users", json={"email": "new@example.com", "name": "New"}, timeout=5).status_code == 409
    prefs = requests.put(f"{base}/users/new@example.com/preferences", json={"theme": "dark"}, timeout=5)
    assert prefs.json()["preferences"] == {"theme": "dark"}
    up = requests.post(f"{base}/users/new@example.com/avatar", files={"file": ("a.png", b"\x89PNGx", "image/png")},
                       timeout=5)
    assert up.json()["files"][0]["size"] == 5
    avatar = requests.get(f"{base}/users/new@example.com/avatar", timeout=5)
    assert avatar.headers["Content-Type"] == "image/png" and avatar.content == b"\x89PNGx"
    assert requests.get(f"{base}/users", params={"tag": "math"}, timeout=5).json()["count"] == 2
    assert requests.get(f"{base}/status/503", timeout=5).status_code == 503
    for code in (204, 304):  # answered without a body (was a 500)
        empty = requests.get(f"{base}/status/{code}", timeout=5)
        assert (empty.status_code, empty.content) == (code, b"")
    assert requests.get(f"{base}/slow", params={"seconds": "0.05"}, timeout=5).json() == {"slept": 0.05}
    assert requests.delete(f"{base}/users/new@example.com", timeout=5).status_code == 200
    assert requests.get(f"{base}/users/new@example.com", timeout=5).status_code == 404
    assert os.path.exists(MCPGW)


def test_the_demo_upload_tool_describes_the_shape_its_schema_accepts():
    tool = next(t for t in demo_document("http://127.0.0.1:1")["tools"] if t["name"] == "upload_avatar")
    file_arg = next(a for a in tool["args"] if a["name"] == "file")
    assert file_arg["type"] == "object"
    assert "base64 text" not in file_arg["description"]  # a string is refused by the object schema

"""The SQL store on SQLite, PostgreSQL and MySQL/MariaDB (the ``store``/``db_url`` fixtures)."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest

from mcpgw_sdk import records as r
from mcpgw_sdk.dburl import mask, parse
from mcpgw_sdk.errors import AuthError, ConfigError, ConflictError, NotFound, StorageError
from mcpgw_sdk.sqlstore import SqlStore
from tests.fixtures_store import make_document

pytestmark = pytest.mark.backends


def _race(n: int, func) -> tuple[list, list]:
    """Run ``func(i)`` in ``n`` threads released together; return (results, exceptions)."""
    barrier = threading.Barrier(n)
    results, errors, lock = [], [], threading.Lock()

    def run(i):
        barrier.wait(timeout=30)
        try:
            value = func(i)
        except Exception as exc:  # noqa: BLE001 - collected and asserted on by the caller
            with lock:
                errors.append(exc)
        else:
            with lock:
                results.append(value)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "threads hung"
    return results, errors


def test_versions_create_update_delete_revert(store):
    doc = store.create_document(make_document("users"), author="ann")
    assert (doc.version, doc.updated_by, doc.tenant, doc.name) == (1, "ann", "default", "users")
    assert store.get_tenant("default").prefix == "/"  # auto-created: the catch-all tenant (docs/storage.md)

    updated = store.save_document(make_document("users", tools=("get_user", "list_users")), author="bob")
    assert updated.version == 2
    rev = store.revision()
    same = store.save_document(make_document("users", tools=("get_user", "list_users")), author="cy")
    assert same.version == 2 and same.updated_by == "bob"
    assert store.revision() == rev, "a no-op save must not bump the revision"

    deleted = store.delete_document("default", "users", author="cy")
    assert (deleted.version, deleted.action, deleted.content) == (3, "delete", None)
    with pytest.raises(NotFound):
        store.get_document("default", "users")
    assert store.get_document("default", "users", include_deleted=True).deleted
    assert store.load_config().documents == ()

    restored = store.rollback("default", "users", 2, author="dan")
    assert restored.version == 4 and not restored.deleted
    assert [t["name"] for t in store.get_document("default", "users").content["tools"]] == ["get_user", "list_users"]
    history = [(v.version, v.action, v.author, v.reverted_from) for v in store.list_versions("default", "users")]
    assert history == [(4, "revert", "dan", 2), (3, "delete", "cy", None), (2, "update", "bob", None),
                       (1, "create", "ann", None)]
    assert store.get_version("default", "users", 1).content["tools"][0]["name"] == "get_user"
    diff = store.diff_versions("default", "users", 1, 2)
    assert diff.startswith("--- default/users@v1\n+++ default/users@v2\n")
    assert "+- name: list_users" in diff
    with pytest.raises(NotFound):
        store.get_version("default", "users", 99)


def test_recreate_deleted_document_continues_numbering(store):
    store.create_document(make_document("a"))
    store.delete_document("default", "a")
    again = store.create_document(make_document("a"), author="x")
    assert again.version == 3
    assert store.list_versions("default", "a")[0].action == "create"
    with pytest.raises(ConflictError):
        store.create_document(make_document("a"))


def test_conflict_names_base_version(store):
    store.create_document(make_document("users"), author="ann")
    store.save_document(make_document("users", tools=("a",)), author="bob", base_version=1)
    with pytest.raises(ConflictError) as info:
        store.save_document(make_document("users", tools=("b",)), author="cy", base_version=1)
    err = info.value
    assert (err.base_version, err.current_version) == (1, 2)
    assert "changed by bob (now version 2); you started from version 1" in str(err)
    with pytest.raises(ConflictError):
        store.delete_document("default", "users", base_version=1)
    assert store.get_document("default", "users").version == 2


def test_rollback_refuses_a_prefix_taken_meanwhile(store):
    store.create_document(make_document("a", prefix="/default/shared"))
    store.delete_document("default", "a")
    store.create_document(make_document("b", prefix="/default/shared"))
    with pytest.raises(ConfigError, match=r"'/default/shared' is already served by document default/b"):
        store.rollback("default", "a", 1)
    with pytest.raises(ConfigError, match="is a deletion"):
        store.rollback("default", "a", 2)


def test_revision_bumps_on_every_config_write(store):
    seen = [store.revision()]

    def bumped(what):
        now = store.revision()
        assert now > seen[-1], f"{what} did not bump the revision"
        seen.append(now)

    def unchanged(what):
        assert store.revision() == seen[-1], f"{what} bumped the revision"

    store.create_tenant("acme", prefix="/acme")
    bumped("create_tenant")
    store.update_tenant("acme", description="ACME")
    bumped("update_tenant")
    store.create_document(make_document("a", tenant="acme"))
    bumped("create_document")
    store.save_document(make_document("a", tenant="acme", tools=("x",)))
    bumped("save_document")
    store.save_document(make_document("a", tenant="acme", tools=("x",)))
    unchanged("a no-op save_document")
    store.delete_document("acme", "a")
    bumped("delete_document")
    store.rollback("acme", "a", 2)
    bumped("rollback")
    store.import_documents([make_document("b", tenant="acme")])
    bumped("import_documents")
    store.import_documents([make_document("b", tenant="acme")])
    unchanged("a no-op import")
    store.create_user("ann", "pw-ann-1", tenants=["acme"])
    bumped("create_user with memberships")
    store.create_tenant("other")
    bumped("create_tenant")
    store.update_user("ann", tenants=["acme", "other"])
    bumped("update_user memberships")
    key, _secret = store.create_key("ann", "acme")
    bumped("create_key")
    store.touch_keys({key.id: datetime.now(timezone.utc)})
    store.set_password("ann", "pw-ann-2")
    chat = store.create_chat("ann")
    store.add_chat_message(chat.id, "user", {"content": "hi"})
    store.write_audit([r.AuditRecord(ts=datetime.now(timezone.utc), tenant="acme", prefix="/acme/a", server="a",
                                     tool="x", outcome="ok", latency_ms=1.0)])
    unchanged("touch_keys, set_password, chat and audit")
    store.revoke_key(key.id)
    bumped("revoke_key")
    store.delete_tenant("other")
    bumped("delete_tenant")
    assert store.load_config().revision == seen[-1]


def test_duplicate_prefix_across_documents(store):
    store.create_document(make_document("a", prefix="/default/x"))
    with pytest.raises(ConfigError) as info:
        store.create_document(make_document("b", prefix="/default/x"))
    assert "routers[0].prefix: '/default/x' is already served by document default/a" in str(info.value)
    store.delete_document("default", "a")
    assert store.create_document(make_document("b", prefix="/default/x")).version == 1


def test_duplicate_prefix_under_concurrency(store):
    store.create_tenant("default")
    results, errors = _race(8, lambda i: store.create_document(make_document(f"d{i}", prefix="/default/same")))
    assert len(results) == 1, errors
    assert len(errors) == 7 and all(isinstance(e, ConfigError) for e in errors), errors
    assert all("/default/same" in str(e) for e in errors)
    assert [d.name for d in store.load_config().documents] == [results[0].name]


def test_fifty_concurrent_creates_one_wins(store):
    rev = store.revision()
    results, errors = _race(50, lambda i: store.create_document(make_document("same"), author=f"u{i}"))
    assert len(results) == 1
    assert len(errors) == 49 and all(isinstance(e, ConflictError) for e in errors), \
        {type(e).__name__ + ": " + str(e) for e in errors}
    assert [v.version for v in store.list_versions("default", "same")] == [1]
    assert store.revision() == rev + 1


def test_import_is_all_or_nothing(store):
    store.create_document(make_document("taken", prefix="/default/taken"))
    rev = store.revision()
    bad = make_document("bad")
    bad["tools"][0]["method"] = "FETCH"
    with pytest.raises(ConfigError) as info:
        store.import_documents([make_document("one"), bad, make_document("two")])
    assert any("default/bad" in line for line in info.value.errors)
    with pytest.raises(ConfigError, match="already served by document default/taken"):
        store.import_documents([make_document("one"), make_document("clash", prefix="/default/taken")])
    with pytest.raises(ConfigError, match="appears twice"):
        store.import_documents([make_document("one"), make_document("one")])
    assert [d.name for d in store.list_documents()] == ["taken"]
    assert store.revision() == rev

    saved = store.import_documents([make_document("one"), make_document("two"),
                                    make_document("taken", prefix="/default/taken", tools=("new",))], author="imp")
    assert [(d.name, d.version) for d in saved] == [("one", 1), ("two", 1), ("taken", 2)]
    assert store.revision() == rev + 1


def test_version_retention(store, monkeypatch):
    monkeypatch.setenv("MCPGW_VERSION_RETENTION", "3")
    store.create_document(make_document("a"))
    for i in range(4):
        store.save_document(make_document("a", tools=(f"t{i}",)))
    assert [v.version for v in store.list_versions("default", "a")] == [5, 4, 3]


def test_tenants(store):
    tenant = store.create_tenant("acme", description="ACME")
    assert (tenant.prefix, tenant.description) == ("/acme", "ACME")
    with pytest.raises(ConflictError):
        store.create_tenant("acme")
    with pytest.raises(ConfigError, match="prefix"):
        store.create_tenant("bad", prefix="nope")
    store.create_document(make_document("a", tenant="acme", prefix="/acme/a"))
    with pytest.raises(ConfigError, match="outside tenant"):
        store.create_document(make_document("b", tenant="acme", prefix="/elsewhere/b"))
    with pytest.raises(ConfigError, match="outside tenant"):
        store.update_tenant("acme", prefix="/other")
    with pytest.raises(ConflictError, match="live document"):
        store.delete_tenant("acme")
    store.delete_document("acme", "a")
    store.delete_tenant("acme")
    with pytest.raises(NotFound):
        store.get_tenant("acme")


def test_users(store):
    store.create_tenant("acme")
    user = store.create_user("ann", "s3cret-pw", role="admin", tenants=["acme"])
    assert (user.name, user.role, user.active, user.tenants) == ("ann", "admin", True, ("acme",))
    with pytest.raises(ConflictError):
        store.create_user("ann", "x-long-pw")
    with pytest.raises(ConfigError, match="role: 'root' is not one of admin, member"):
        store.create_user("bob", "x-long-pw", role="root")
    with pytest.raises(NotFound):
        store.create_user("bob", "x-long-pw", tenants=["nope"])
    assert store.authenticate("ann", "s3cret-pw").name == "ann"
    key, secret = store.create_key("ann", "acme")
    messages = set()
    for name, password in (("ann", "wrong"), ("nobody", "s3cret-pw")):
        with pytest.raises(AuthError) as info:
            store.authenticate(name, password)
        messages.add(str(info.value))
    store.update_user("ann", active=False)
    with pytest.raises(AuthError) as info:
        store.authenticate("ann", "s3cret-pw")
    messages.add(str(info.value))
    assert messages == {"invalid user name or password"}
    store.update_user("ann", active=True, role="member", tenants=[])
    store.set_password("ann", "n3w-secret")
    assert store.authenticate("ann", "n3w-secret").tenants == ()
    assert [u.name for u in store.list_users()] == ["ann"]
    store.delete_user("ann")
    with pytest.raises(NotFound):
        store.get_user("ann")
    with pytest.raises(AuthError):
        store.verify_key(secret)
    assert store.list_keys() == []


def test_api_keys(store):
    store.create_tenant("acme")
    store.create_user("ann", "pw-ann-1", tenants=["acme"])
    key, secret = store.create_key("ann", "acme", name="ci", servers=["s"], tools=["t"])
    assert secret.startswith("mcpgw_") and len(secret) > 40 and key.prefix == secret[:8]
    assert secret not in repr(key) and key.secret_hash != secret
    assert store.verify_key(secret).id == key.id
    assert (key.servers, key.tools, key.user, key.tenant) == (("s",), ("t",), "ann", "acme")
    with pytest.raises(AuthError):
        store.verify_key(secret + "x")
    past = datetime.now(timezone.utc) - timedelta(minutes=1)
    old, old_secret = store.create_key("ann", "acme", expires_at=past)
    with pytest.raises(AuthError, match="expired"):
        store.verify_key(old_secret)
    later = datetime.now(timezone.utc) + timedelta(days=1)
    future, _ = store.create_key("ann", "acme", expires_at=later)
    assert abs(store.get_key(future.id).expires_at - later) < timedelta(seconds=1)
    assert {k.id for k in store.load_config().keys} == {key.id, future.id}
    used = datetime.now(timezone.utc)
    store.touch_keys({key.id: used})
    assert abs(store.get_key(key.id).last_used_at - used) < timedelta(seconds=1)
    store.update_user("ann", active=False)
    with pytest.raises(AuthError, match="inactive"):
        store.verify_key(secret)
    assert store.load_config().keys == ()
    store.update_user("ann", active=True)
    store.revoke_key(key.id)
    with pytest.raises(AuthError, match="revoked"):
        store.verify_key(secret)
    assert {k.id for k in store.load_config().keys} == {future.id}
    assert [k.id for k in store.list_keys(user="ann")] == [future.id, old.id, key.id]
    with pytest.raises(NotFound):
        store.revoke_key(10_000)


def test_chat_and_audit(store):
    store.create_user("ann", "pw-ann-1")
    chat = store.create_chat("ann", title="first", prefix="/default/users", settings={"model": "m"})
    other = store.create_chat("ann", title="second")
    store.add_chat_message(chat.id, "user", {"role": "user", "content": "hi"})
    store.add_chat_message(chat.id, "assistant", {"role": "assistant", "content": "hello"})
    assert [(m.seq, m.role) for m in store.chat_messages(chat.id)] == [(1, "user"), (2, "assistant")]
    assert store.list_chats(user="ann")[0].id == chat.id  # most recently updated first
    renamed = store.update_chat(other.id, title="renamed", settings={"t": 1})
    assert (renamed.title, renamed.settings) == ("renamed", {"t": 1})
    with pytest.raises(ConfigError):
        store.add_chat_message(chat.id, "robot", {})
    store.delete_chat(chat.id)
    with pytest.raises(NotFound):
        store.chat_messages(chat.id)

    base = datetime.now(timezone.utc).replace(microsecond=0)
    store.write_audit([r.AuditRecord(ts=base + timedelta(seconds=i), tenant="default", prefix="/default/users",
                                     server="users", tool="get_user" if i % 2 else "list", outcome="ok" if i else "error",
                                     latency_ms=float(i), user="ann", key_id=1, session_id="s", error=None)
                       for i in range(10)])
    newest = store.query_audit(limit=3)
    assert [a.latency_ms for a in newest] == [9.0, 8.0, 7.0]
    assert newest[0].ts == base + timedelta(seconds=9)
    assert len(store.query_audit(tool="get_user")) == 5
    assert [a.latency_ms for a in store.query_audit(outcome="error")] == [0.0]
    assert [a.latency_ms for a in store.query_audit(since=base + timedelta(seconds=8))] == [9.0, 8.0]
    assert [a.latency_ms for a in store.query_audit(limit=2, offset=8)] == [1.0, 0.0]


def test_load_config_reads_everything(store):
    store.create_document(make_document("a"))
    store.create_document(make_document("b", tenant="t2"))
    store.delete_document("t2", "b")
    config = store.load_config()
    assert config.revision == store.revision()
    assert [(d.tenant, d.name, d.version) for d in config.documents] == [("default", "a", 1)]
    assert [t.name for t in config.tenants] == ["default", "t2"]
    assert config.documents[0].content["routers"][0]["prefix"] == "/default/a"


def test_reconnects_after_connections_are_killed(store, db_url):
    store.create_document(make_document("a"))
    rev = store.revision()
    if db_url.startswith("sqlite"):
        store.db.close_all()  # no server to lose connections to; closing them all is the nearest thing
    else:
        _kill_connections(db_url)
    # Pooled connections are now dead: reads retry on a fresh connection, writes fail once at most.
    assert store.revision() == rev
    try:
        store.save_document(make_document("a", tools=("x",)))
    except StorageError:
        store.save_document(make_document("a", tools=("x",)))
    assert store.get_document("default", "a").version == 2


def _kill_connections(db_url: str) -> None:
    info = parse(db_url)
    if info.kind == "postgresql":
        import psycopg2

        conn = psycopg2.connect(host=info.host, port=info.port or 5432, user=info.user, dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s "
                        "AND pid <> pg_backend_pid()", (info.database,))
            assert cur.fetchone()[0] >= 1
        conn.close()
    else:
        import pymysql

        conn = pymysql.connect(host=info.host, port=info.port or 3306, user=info.user or "root",
                               password=info.password or "", autocommit=True)
        with conn.cursor() as cur:
            cur.execute("SELECT id FROM information_schema.processlist WHERE db = %s AND id <> CONNECTION_ID()",
                        (info.database,))
            ids = [row[0] for row in cur.fetchall()]
            assert ids
            for pid in ids:
                cur.execute(f"KILL {int(pid)}")
        conn.close()


@pytest.mark.parametrize("url", ["postgresql://u:secret@127.0.0.1:1/x", "mysql://u:secret@127.0.0.1:1/x"])
def test_unreachable_database_is_a_storage_error_with_masked_url(url):
    store = SqlStore(url)
    with pytest.raises(StorageError) as info:
        store.revision()
    message = str(info.value)
    assert url.replace(":secret@", ":***@") in message
    assert "secret" not in message
    with pytest.raises(StorageError):
        store.create_tenant("x")
    store.close()


def test_database_urls():
    assert mask("postgresql://u:secret@h:5/db") == "postgresql://u:***@h:5/db"
    assert mask("sqlite:///x.db") == "sqlite:///x.db"
    assert parse("sqlite:///rel/x.db").database == "rel/x.db"
    assert parse("sqlite:////abs/x.db").database == "/abs/x.db"
    assert parse("sqlite:///:memory:").is_memory
    pg = parse("postgres://u:p%40ss@db.example:6543/mcpgw?sslmode=require")
    assert (pg.kind, pg.user, pg.password, pg.host, pg.port, pg.database, pg.params) == \
        ("postgresql", "u", "p@ss", "db.example", 6543, "mcpgw", {"sslmode": "require"})
    assert parse("mysql://root@127.0.0.1/test").kind == "mysql"
    for bad in ("nope://x", "sqlite:x.db", "postgresql://u@h/"):
        with pytest.raises(ConfigError, match="database_url"):
            parse(bad)


def test_memory_store_is_shared_across_threads():
    store = SqlStore("sqlite:///:memory:")
    assert store.upgrade() == ["0001_initial", "0002_secrets", "0003_checked"]
    results, errors = _race(5, lambda i: store.create_document(make_document(f"d{i}")))
    assert not errors and len(results) == 5
    assert len(store.load_config().documents) == 5
    store.close()


GEVENT_SCRIPT = r'''
from gevent import monkey
monkey.patch_all()
from psycogreen.gevent import patch_psycopg
patch_psycopg()
import sys, gevent
from mcpgw_sdk.errors import ConflictError
from mcpgw_sdk.sqlstore import SqlStore
from tests.fixtures_store import make_document

store = SqlStore(sys.argv[1])
store.upgrade()

def create(i):
    store.create_document(make_document(f"d{i}"))
    return store.revision()

def same(i):
    try:
        store.create_document(make_document("same"))
        return "ok"
    except ConflictError:
        return "conflict"

jobs = [gevent.spawn(create, i) for i in range(25)] + [gevent.spawn(same, i) for i in range(25)]
gevent.joinall(jobs, timeout=120, raise_error=True)
outcomes = sorted(j.value for j in jobs[25:])
assert outcomes.count("ok") == 1 and outcomes.count("conflict") == 24, outcomes
assert len(store.load_config().documents) == 26
print("GEVENT-OK", store.revision())
'''


def test_store_is_safe_across_gevent_greenlets(db_url, procs, tmp_path):
    script = tmp_path / "gevent_store.py"
    script.write_text(GEVENT_SCRIPT)
    from tests.helpers import ROOT, python, wait_for

    proc = procs.start([python(), str(script), db_url], env={"PYTHONPATH": str(ROOT)}, name="gevent-store")
    wait_for(lambda: not proc.alive(), timeout=150, what="the gevent store script to finish")
    output = proc.output()
    assert proc.stop() == 0, output
    assert "GEVENT-OK 27" in output, output


def test_forked_child_opens_its_own_connections(store):
    import os

    store.create_document(make_document("a"))
    rev = store.revision()  # the parent now holds a pooled connection
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit code
        code = 1
        try:
            store.save_document(make_document("a", tools=("child",)))
            code = 0 if store.revision() == rev + 1 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store.revision() == rev + 1  # the parent's connection survived the child
    assert store.get_document("default", "a").content["tools"][0]["name"] == "child"


def test_passwords_shorter_than_8_characters_are_refused(sqlite_store):
    with pytest.raises(ConfigError, match="password: must be at least 8 characters"):
        sqlite_store.create_user("ann", "short-7")
    sqlite_store.create_user("ann", "eight-ch")
    with pytest.raises(ConfigError, match="password: must be at least 8 characters"):
        sqlite_store.set_password("ann", "1234567")
    assert sqlite_store.authenticate("ann", "eight-ch").name == "ann"

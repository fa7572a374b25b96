"""Schema migrations on every backend: from an empty database, status, the MigrationRequired message."""

from __future__ import annotations

import threading

import pytest

from mcpgw_sdk import open_store
from mcpgw_sdk.errors import MigrationRequired
from mcpgw_sdk.migrations import MIGRATIONS
from mcpgw_sdk.sqlstore import SqlStore

pytestmark = pytest.mark.backends


def test_upgrade_from_an_empty_database(db_url):
    with pytest.raises(MigrationRequired) as info:
        open_store(db_url, check=True)
    message = str(info.value)
    assert "needs migrations 0001_initial" in message
    assert "run: mcpgw db upgrade --db " in message
    store = open_store(db_url, check=False)
    try:
        assert store.migration_status() == [(name, False) for name, _ in MIGRATIONS]
        assert store.upgrade() == [name for name, _ in MIGRATIONS]
        assert store.upgrade() == []
        assert all(done for _, done in store.migration_status())
        store.check_schema()
        assert store.revision() == 1
        assert store.load_config().documents == ()
    finally:
        store.close()
    reopened = open_store(db_url, check=True)
    assert reopened.revision() == 1
    reopened.close()


def test_0003_adds_the_checked_column_to_an_older_database(db_url):
    """A database upgraded before ``0003_checked`` gains ``document.checked``; its documents, written without a
    mark, load unmarked (the gateway validates them), and what is saved from then on is marked."""
    from tests.fixtures_store import make_document

    store = SqlStore(db_url)
    store.upgrade()
    store.save_document(make_document("a"))
    store.db.execute_sql("ALTER TABLE document DROP COLUMN checked")
    store.db.execute_sql("DELETE FROM schema_migration WHERE name = '0003_checked'")
    store.close()
    try:
        assert [name for name, done in store.migration_status() if not done] == ["0003_checked"]
        assert store.upgrade() == ["0003_checked"]
        store.save_document(make_document("b"))
        docs = {d.name: d for d in store.load_config().documents}
        assert docs["a"].checked == "" and docs["a"].content["name"] == "a"
        assert docs["b"].checked
    finally:
        store.close()


def test_concurrent_upgrades_apply_once(db_url):
    stores = [SqlStore(db_url) for _ in range(3)]
    applied, errors = [], []

    def run(store):
        try:
            applied.append(store.upgrade())
        except Exception as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    # Each migration runs in its own transaction, so two stores may share the work; none runs twice.
    assert len(applied) == 3
    assert sorted(name for names in applied for name in names) == sorted(name for name, _ in MIGRATIONS)
    for s in stores:
        s.close()


def test_migration_required_masks_the_password(db_url):
    url = db_url
    if url.startswith("postgresql://"):
        # The test server trusts loopback, so a password in the URL is accepted and ignored.
        url = url.replace("postgres@", "postgres:s3cr3t@", 1)
        assert "s3cr3t" in url
    with pytest.raises(MigrationRequired) as info:
        open_store(url)
    message = str(info.value)
    assert "s3cr3t" not in message
    masked = url.replace(":s3cr3t@", ":***@")
    assert f"database at {masked} needs migrations 0001_initial, 0002_secrets, 0003_checked; run: mcpgw db upgrade --db {masked}" \
        == message
    store = SqlStore("postgresql://u:secret@127.0.0.1:1/x")
    assert store.url == "postgresql://u:***@127.0.0.1:1/x"
    store.close()

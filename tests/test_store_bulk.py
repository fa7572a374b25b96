"""Bulk writes: an import of many documents in one transaction, on every backend."""

from __future__ import annotations

from tests.fixtures_store import make_document


def test_import_of_150_documents_with_distinct_prefixes(store):
    # One nested OR per prefix once overflowed SQLite's parser stack at ~100 documents.
    docs = [make_document(f"svc{i}", tenant="bulk", prefix=f"/bulk/svc{i}") for i in range(150)]
    before = store.revision()
    saved = store.import_documents(docs, author="bulk")
    assert len(saved) == 150
    assert store.revision() > before
    loaded = store.load_config()
    assert {d.name for d in loaded.documents if d.tenant == "bulk"} == {f"svc{i}" for i in range(150)}
    # importing them again as new versions checks every prefix against the stored ones
    for doc in docs:
        doc["tools"][0]["description"] = "changed"
    again = store.import_documents(docs, author="bulk")
    assert {d.version for d in again} == {2}

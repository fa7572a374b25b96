"""Store figures: import N documents (20 tools each), load_config() of all, one revision() poll.

    python bench/store_bench.py [--docs 1000] [--backends sqlite,postgresql,mysql]

Each backend gets a fresh, throw-away database (dropped afterwards); an
unreachable server is skipped with a note. Plain prints, never asserts timing.
Admin URLs come from MCPGW_TEST_POSTGRESQL / MCPGW_TEST_MYSQL (as in the tests).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mcpgw_sdk.sqlstore import SqlStore  # noqa: E402 - after the path tweak

PG_ADMIN = os.environ.get("MCPGW_TEST_POSTGRESQL", "postgresql://postgres@127.0.0.1:5432/test")
MY_ADMIN = os.environ.get("MCPGW_TEST_MYSQL", "mysql://root@127.0.0.1:3306/test")


def document(i: int, tools: int = 20) -> dict:
    """A realistic REST document: one server, ``tools`` tools with two arguments each."""
    names = [f"op_{i}_{t}" for t in range(tools)]
    return {
        "name": f"svc{i}", "tenant": "bench",
        "routers": [{"prefix": f"/bench/svc{i}", "server": f"svc{i}"}],
        "servers": [{"name": f"svc{i}", "description": f"service {i}", "allowedTools": names,
                     "config": {"token": "{{ env('TOKEN') }}"}}],
        "tools": [{"name": n, "description": f"operation {n}", "method": "POST",
                   "endpoint": f"http://127.0.0.1:9/svc{i}/{n}/{{{{ args.id }}}}",
                   "headers": {"Authorization": "Bearer {{ config.token }}"},
                   "args": [{"name": "id", "position": "path", "required": True, "type": "string"},
                            {"name": "body", "position": "body", "type": "object", "description": "payload"}]}
                  for n in names],
    }


def _database(kind: str, tmp: str):
    name = "mcpgw_bench_" + uuid.uuid4().hex[:10]
    if kind == "sqlite":
        return f"sqlite:///{tmp}/bench.db", lambda: None
    if kind == "postgresql":
        import psycopg2

        conn = psycopg2.connect(PG_ADMIN, connect_timeout=3)
        conn.autocommit = True
        conn.cursor().execute(f'CREATE DATABASE "{name}"')
        return PG_ADMIN.rsplit("/", 1)[0] + "/" + name, \
            lambda: (conn.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'), conn.close())
    import pymysql

    from mcpgw_sdk.dburl import parse

    info = parse(MY_ADMIN)
    conn = pymysql.connect(host=info.host, port=info.port or 3306, user=info.user or "root",
                           password=info.password or "", connect_timeout=3, autocommit=True)
    conn.cursor().execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    return MY_ADMIN.rsplit("/", 1)[0] + "/" + name, \
        lambda: (conn.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`"), conn.close())


def run(kind: str, docs: list[dict], polls: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            url, drop = _database(kind, tmp)
        except Exception as exc:  # noqa: BLE001 - a missing server is a note, not a failure
            print(f"{kind:<11} skipped: {exc}".splitlines()[0])
            return
        store = SqlStore(url)
        try:
            store.upgrade()
            start = time.perf_counter()
            store.import_documents(docs, author="bench")
            imported = time.perf_counter() - start
            start = time.perf_counter()
            config = store.load_config()
            loaded = time.perf_counter() - start
            assert len(config.documents) == len(docs)
            samples = []
            for _ in range(polls):
                t0 = time.perf_counter()
                store.revision()
                samples.append(time.perf_counter() - t0)
            server = store.server
        finally:
            store.close()
            drop()
    print(f"{kind:<11} {server:<28} import {len(docs)} docs: {imported:7.2f} s   "
          f"load_config: {loaded * 1000:8.1f} ms   revision(): median {statistics.median(samples) * 1e6:7.0f} µs "
          f"(p95 {sorted(samples)[int(len(samples) * 0.95)] * 1e6:.0f} µs)")


def main(argv=None) -> None:
    """Parse arguments and print one line per backend."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1000, help="documents to import (20 tools each)")
    parser.add_argument("--polls", type=int, default=1000, help="revision() calls to time")
    parser.add_argument("--backends", default="sqlite,postgresql,mysql", help="comma list")
    args = parser.parse_args(argv)
    docs = [document(i) for i in range(args.docs)]
    from mcpgw_sdk import documents

    start = time.perf_counter()
    for doc in docs:
        documents.validate(doc)
    print(f"validation alone (no database), {len(docs)} docs: {time.perf_counter() - start:.2f} s "
          "(part of every import figure below)")
    for kind in [b.strip() for b in args.backends.split(",") if b.strip()]:
        run(kind, docs, args.polls)


if __name__ == "__main__":
    main()

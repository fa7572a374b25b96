"""Audit records of tool calls, written in batches off the request path.

:meth:`AuditWriter.add` never blocks: when the queue is full the record is
dropped and counted. A background thread (a greenlet under gevent) flushes
batches to ``store.write_audit``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("mcpgw.audit")


class AuditWriter:
    """Queue audit records and write them in batches with ``write(records)``."""

    def __init__(self, write: Callable[[list[Any]], None], *, max_queue: int = 10000, batch: int = 200,
                 interval: float = 1.0, on_drop: Callable[[int], None] | None = None):
        self._write = write
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._batch = batch
        self._interval = interval
        self._on_drop = on_drop
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._failing = False

    def add(self, record: Any) -> None:
        """Queue a record; drop it (counted) when the queue is full."""
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self._drop(1)

    def _drop(self, n: int) -> None:
        if self._on_drop:
            self._on_drop(n)

    def start(self) -> None:
        """Start the background writer."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="mcpgw-audit", daemon=True)
            self._thread.start()

    def flush(self) -> None:
        """Write everything queued now."""
        while True:
            items = []
            while len(items) < self._batch:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if not items:
                return
            try:
                self._write(items)
                if self._failing:
                    log.info("audit writes work again")
                    self._failing = False
            except Exception as exc:  # noqa: BLE001 - audit must never take the gateway down
                self._drop(len(items))
                if not self._failing:  # once per outage, not every second
                    log.warning("audit write failed, records dropped until it works again: %s", exc)
                    self._failing = True
                return
            # A SQLite write blocks gevent's hub for its whole duration (~1 ms per 200 rows): let
            # requests run between batches instead of stalling them for every batch in a row.
            time.sleep(0)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.flush()
        self.flush()

    def stop(self) -> None:
        """Flush and stop the writer."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

"""The activity part of the SQL store: chat sessions and the audit trail (no revision bumps)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import peewee as pw

from .. import records as r
from ..errors import ConfigError, ConflictError, NotFound
from ..store import ActivityStore
from .base import SqlBase, _aware, _dumps, _naive, _now

CHAT_ROLES = ("system", "user", "assistant", "tool")


class SqlActivity(SqlBase, ActivityStore):
    """:class:`~mcpgw_sdk.store.ActivityStore` on SQL."""

    # -- chat --------------------------------------------------------------------
    @staticmethod
    def _chat(row, user: str) -> r.ChatSession:
        return r.ChatSession(id=row.id, user=user, title=row.title, prefix=row.prefix,
                             settings=json.loads(row.settings or "{}"), created_at=_aware(row.created_at),
                             updated_at=_aware(row.updated_at))

    def _chat_row(self, chat_id: str):
        CS, U = self.m.ChatSession, self.m.User
        row = CS.select(CS, U.name).join(U).where(CS.id == chat_id).first()
        if row is None:
            raise NotFound(f"chat {chat_id!r} does not exist")
        return row

    def create_chat(self, user: str, *, title: str = "New chat", prefix: str = "",
                    settings: dict[str, Any] | None = None) -> r.ChatSession:
        """Start a chat session for ``user``."""
        def create():
            user_row = self._user_row(user)
            now = _now()
            row = self.m.ChatSession.create(id=uuid.uuid4().hex, user=user_row.id, title=title[:200], prefix=prefix,
                                            settings=_dumps(settings or {}), created_at=now, updated_at=now)
            return self._chat(row, user)

        return self._write(create, bump=False)

    def list_chats(self, *, user: str | None = None) -> list[r.ChatSession]:
        """Chat sessions, most recently updated first."""
        CS, U = self.m.ChatSession, self.m.User
        query = CS.select(CS, U.name).join(U).order_by(CS.updated_at.desc(), CS.id)
        if user is not None:
            query = query.where(U.name == user)
        return self._read(lambda: [self._chat(row, row.user.name) for row in query])

    def get_chat(self, chat_id: str) -> r.ChatSession:
        """One chat session or NotFound."""
        return self._read(lambda: (lambda row: self._chat(row, row.user.name))(self._chat_row(chat_id)))

    def update_chat(self, chat_id: str, *, title: str | None = None,
                    settings: dict[str, Any] | None = None) -> r.ChatSession:
        """Rename a chat or change its settings."""
        def update():
            CS = self.m.ChatSession
            row = self._chat_row(chat_id)
            changes = {CS.updated_at: _now()}
            if title is not None:
                changes[CS.title] = title[:200]
            if settings is not None:
                changes[CS.settings] = _dumps(settings)
            CS.update(changes).where(CS.id == row.id).execute()
            return self._chat(self._chat_row(chat_id), row.user.name)

        return self._write(update, bump=False)

    def delete_chat(self, chat_id: str) -> None:
        """Delete a chat session and its messages."""
        def delete():
            row = self._chat_row(chat_id)
            self.m.ChatMessage.delete().where(self.m.ChatMessage.session == row.id).execute()
            self.m.ChatSession.delete().where(self.m.ChatSession.id == row.id).execute()

        self._write(delete, bump=False)

    def add_chat_message(self, chat_id: str, role: str, content: dict[str, Any]) -> r.ChatMessage:
        """Append a message (``role`` system, user, assistant or tool; ``content`` in OpenAI chat format)."""
        if role not in CHAT_ROLES:
            raise ConfigError(f"role: {role!r} is not one of {', '.join(CHAT_ROLES)}")
        CM, CS = self.m.ChatMessage, self.m.ChatSession

        def add():
            row = self._chat_row(chat_id)
            seq = (CM.select(pw.fn.MAX(CM.seq)).where(CM.session == row.id).scalar() or 0) + 1
            now = _now()
            CM.create(session=row.id, seq=seq, role=role, content=_dumps(content), created_at=now)
            CS.update(updated_at=now).where(CS.id == row.id).execute()
            return r.ChatMessage(session_id=chat_id, seq=seq, role=role, content=content, created_at=_aware(now))

        for attempt in range(5):
            try:
                return self._write(add, bump=False)
            except pw.IntegrityError:
                if attempt == 4:
                    raise ConflictError(f"chat {chat_id!r}: too many concurrent messages") from None
        raise AssertionError("unreachable")

    def chat_messages(self, chat_id: str) -> list[r.ChatMessage]:
        """A chat's messages in order (NotFound when the chat does not exist)."""
        CM = self.m.ChatMessage

        def messages():
            row = self._chat_row(chat_id)
            return [r.ChatMessage(session_id=chat_id, seq=m.seq, role=m.role, content=json.loads(m.content),
                                  created_at=_aware(m.created_at))
                    for m in CM.select().where(CM.session == row.id).order_by(CM.seq)]

        return self._read(messages)

    # -- audit -------------------------------------------------------------------
    def write_audit(self, items: Iterable[r.AuditRecord]) -> None:
        """Insert audit records in one transaction (in chunks of 500 rows)."""
        rows = [(_naive(i.ts), i.tenant or "", i.prefix or "", i.server or "", i.tool or "", i.outcome,
                 float(i.latency_ms or 0.0), i.user, i.key_id, i.session_id, i.error[:4000] if i.error else i.error)
                for i in items]
        if not rows:
            return
        A = self.m.Audit
        fields = [A.ts, A.tenant, A.prefix, A.server, A.tool, A.outcome, A.latency_ms, A.user, A.key_id,
                  A.session_id, A.error]

        def insert():
            if self.info.kind == "postgresql":  # psycopg2's executemany is one round trip per row
                for start in range(0, len(rows), 500):
                    A.insert_many(rows[start:start + 500], fields=fields).execute()
                return
            # The gateway writes these while serving calls: building SQL per value in Python cost
            # ~0.1 ms a row; the driver's executemany of one prepared INSERT costs a few µs.
            sql = A.insert_many([rows[0]], fields=fields).sql()[0]
            cursor = self.db.cursor()
            for start in range(0, len(rows), 500):
                cursor.executemany(sql, rows[start:start + 500])

        self._write(insert, bump=False)

    def query_audit(self, *, since: datetime | None = None, until: datetime | None = None,
                    tenant: str | None = None, prefix: str | None = None, server: str | None = None,
                    tool: str | None = None, user: str | None = None, outcome: str | None = None,
                    limit: int = 100, offset: int = 0) -> list[r.AuditRecord]:
        """Audit records, newest first, filtered and paginated."""
        A = self.m.Audit
        query = A.select()
        if since is not None:
            query = query.where(A.ts >= _naive(since))
        if until is not None:
            query = query.where(A.ts < _naive(until))
        for column, value in ((A.tenant, tenant), (A.prefix, prefix), (A.server, server), (A.tool, tool),
                              (A.user, user), (A.outcome, outcome)):
            if value is not None:
                query = query.where(column == value)
        query = query.order_by(A.ts.desc(), A.id.desc()).limit(max(0, int(limit))).offset(max(0, int(offset)))
        return self._read(lambda: [
            r.AuditRecord(ts=_aware(a.ts), tenant=a.tenant, prefix=a.prefix, server=a.server, tool=a.tool,
                          outcome=a.outcome, latency_ms=a.latency_ms, user=a.user, key_id=a.key_id,
                          session_id=a.session_id, error=a.error, id=a.id) for a in query])

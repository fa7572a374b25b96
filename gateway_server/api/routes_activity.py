"""Chat-lab history (``/chats``), the audit log (``/audit``) and ``/status``."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from .common import (
    access,
    arg_choice,
    arg_datetime,
    arg_int,
    caller,
    encode,
    json_body,
    store,
)

bp = Blueprint("activity", __name__)
OUTCOMES = ("ok", "error", "denied", "timeout")


def _visible_chat(chat_id: str):
    chat = store().get_chat(chat_id)
    access().require_chat(chat, chat_id)
    return chat


@bp.get("/chats")
def list_chats():
    """Chat sessions, most recent first: the caller's own; admins all, or one user's with ``?user=``."""
    user = request.args.get("user") if access().is_admin else caller().name
    return jsonify([encode(c) for c in store().list_chats(user=user)])


@bp.post("/chats")
def create_chat():
    """Start a chat session owned by the caller."""
    data = json_body("ChatCreate")
    chat = store().create_chat(caller().name, title=data.get("title", "New chat"), prefix=data.get("prefix", ""),
                               settings=data.get("settings") or {})
    return jsonify(encode(chat)), 201, {"Location": f"{request.root_path}/api/v1/chats/{chat.id}"}


@bp.get("/chats/<chat_id>")
def get_chat(chat_id):
    """One chat session."""
    return jsonify(encode(_visible_chat(chat_id)))


@bp.patch("/chats/<chat_id>")
def update_chat(chat_id):
    """Rename a chat or change its settings."""
    _visible_chat(chat_id)
    data = json_body("ChatUpdate")
    return jsonify(encode(store().update_chat(chat_id, title=data.get("title"), settings=data.get("settings"))))


@bp.delete("/chats/<chat_id>")
def delete_chat(chat_id):
    """Delete a chat session and its messages."""
    _visible_chat(chat_id)
    store().delete_chat(chat_id)
    return "", 204


@bp.get("/chats/<chat_id>/messages")
def chat_messages(chat_id):
    """A chat's messages in order."""
    _visible_chat(chat_id)
    return jsonify([encode(m) for m in store().chat_messages(chat_id)])


@bp.post("/chats/<chat_id>/messages")
def add_chat_message(chat_id):
    """Append a message (OpenAI chat format in ``content``)."""
    _visible_chat(chat_id)
    data = json_body("ChatMessageCreate")
    return jsonify(encode(store().add_chat_message(chat_id, data["role"], data["content"]))), 201


@bp.get("/audit")
def audit():
    """Tool calls, newest first, filtered; members see their tenants' records only."""
    filters = {
        "since": arg_datetime("since"), "until": arg_datetime("until"),
        "prefix": request.args.get("prefix"), "server": request.args.get("server"),
        "tool": request.args.get("tool"), "user": request.args.get("user"),
        "outcome": arg_choice("outcome", OUTCOMES),
    }
    limit = arg_int("limit", 100, minimum=1, maximum=1000)
    offset = arg_int("offset", 0, minimum=0, maximum=2**31 - 1)
    tenant = request.args.get("tenant")
    allowed = access()
    if tenant is not None:
        allowed.require_tenant(tenant, to="read_audit")
    tenants = allowed.visible_tenants()
    if tenants is None or tenant is not None:
        records = store().query_audit(tenant=tenant, limit=limit, offset=offset, **filters)
    else:
        # a member's view spans several tenants: merge each tenant's newest records, then page
        merged = []
        for name in sorted(tenants):
            merged += store().query_audit(tenant=name, limit=limit + offset, offset=0, **filters)
        merged.sort(key=lambda rec: (rec.ts, rec.id or 0), reverse=True)
        records = merged[offset:offset + limit]
    return jsonify([encode(rec) for rec in records])


@bp.get("/status")
def status():
    """The config revision and how many documents and tenants the caller can see."""
    allowed = access()
    docs = allowed.visible(store().list_documents())
    names = [t.name for t in store().list_tenants() if allowed.may_see(t.name)]
    from mcpgw_sdk import __version__

    return jsonify({"revision": store().revision(), "documents": len(docs), "tenants": len(names),
                    "version": __version__, "read_only": bool(getattr(store(), "read_only", False))})

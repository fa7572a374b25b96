"""The access policy (mcpgw_sdk.access) on its own: no store, no server, one table of who may do what."""

from __future__ import annotations

import doctest

import pytest

from mcpgw_sdk import access as access_module
from mcpgw_sdk.access import TENANT_ACTIONS, Access
from mcpgw_sdk.errors import Forbidden, NotFound
from mcpgw_sdk.records import ApiKey, AuditRecord, ChatSession, Document, User

ADMIN = User(id=1, name="root", role="admin", active=True)
ALICE = User(id=2, name="alice", role="member", active=True, tenants=("acme",))
BOB = User(id=3, name="bob", role="member", active=True, tenants=("globex",))
CAROL = User(id=4, name="carol", role="member", active=False, tenants=("acme",))
OFF_ADMIN = User(id=5, name="old", role="admin", active=False)


def key(owner: str, tenant: str = "acme", *, revoked: bool = False) -> ApiKey:
    return ApiKey(id=7, name="k", prefix="mk_1", user=owner, tenant=tenant, revoked=revoked)


def chat(owner: str) -> ChatSession:
    return ChatSession(id="c1", user=owner, title="t", prefix="/acme/a", settings={}, created_at=None,
                       updated_at=None)


#: (user, question, expected): the policy table, row by row.
TABLE = [
    # tenants and their documents: admins all, members their own tenants
    *[(ADMIN, f"may_{a}", "globex", True) for a in TENANT_ACTIONS],
    *[(ALICE, f"may_{a}", "acme", True) for a in TENANT_ACTIONS],
    *[(ALICE, f"may_{a}", "globex", False) for a in TENANT_ACTIONS],
    *[(CAROL, f"may_{a}", "acme", False) for a in TENANT_ACTIONS],
    # accounts and tenants
    (ADMIN, "may_manage_users", None, True),
    (ADMIN, "may_manage_tenants", None, True),
    (ALICE, "may_manage_users", None, False),
    (ALICE, "may_manage_tenants", None, False),
    (OFF_ADMIN, "may_manage_users", None, False),
    (ADMIN, "may_remove", "alice", True),
    (ADMIN, "may_remove", "root", False),
    (ALICE, "may_remove", "bob", False),
    (ALICE, "may_remove", "alice", False),
    # keys
    (ADMIN, "may_act_for", "alice", True),
    (ALICE, "may_act_for", "alice", True),
    (ALICE, "may_act_for", "bob", False),
    (CAROL, "may_act_for", "carol", False),
    (ADMIN, "may_see_key", key("alice"), True),
    (ALICE, "may_see_key", key("alice"), True),
    (ALICE, "may_revoke_key", key("alice", revoked=True), True),
    (BOB, "may_see_key", key("alice"), False),
    (BOB, "may_revoke_key", key("alice"), False),
    (ADMIN, "may_manage_key_secrets", key("alice"), True),
    (ADMIN, "may_manage_key_secrets", key("alice", revoked=True), False),
    (ALICE, "may_manage_key_secrets", key("alice"), True),
    (ALICE, "may_manage_key_secrets", key("alice", revoked=True), False),
    (BOB, "may_manage_key_secrets", key("alice"), False),
    # secrets, chats, fetching
    (ADMIN, "may_set_tenant_secret", "acme", True),
    (ALICE, "may_set_tenant_secret", "acme", False),
    (ADMIN, "may_see_chat", chat("alice"), True),
    (ALICE, "may_see_chat", chat("alice"), True),
    (BOB, "may_see_chat", chat("alice"), False),
    (ADMIN, "may_fetch_url", None, True),
    (ALICE, "may_fetch_url", None, False),
]


@pytest.mark.parametrize(("user", "question", "arg", "expected"), TABLE,
                         ids=[f"{u.name}-{q}-{getattr(a, 'user', a)}" for u, q, a, _ in TABLE])
def test_policy_table(user, question, arg, expected):
    ask = getattr(Access(user), question)
    assert (ask() if arg is None else ask(arg)) is expected


@pytest.mark.parametrize(("user", "tenant", "owner", "expected"), [
    (ADMIN, "globex", "alice", True),  # the store then checks alice's membership of globex
    (ALICE, "acme", "alice", True),
    (ALICE, "globex", "alice", False),
    (ALICE, "acme", "bob", False),
    (CAROL, "acme", "carol", False),
])
def test_who_may_create_a_key(user, tenant, owner, expected):
    assert Access(user).may_create_key(tenant, owner) is expected


def test_visible_tenants_and_records():
    docs = [Document("acme", "a", {}, 1), Document("globex", "g", {}, 1)]
    assert Access(ADMIN).visible_tenants() is None
    assert Access(ALICE).visible_tenants() == {"acme"}
    assert Access(CAROL).visible_tenants() == frozenset()
    assert Access(OFF_ADMIN).visible_tenants() == frozenset()
    assert [d.name for d in Access(ADMIN).visible(docs)] == ["a", "g"]
    assert [d.name for d in Access(ALICE).visible(docs)] == ["a"]
    assert [d.name for d in Access(BOB).visible(docs)] == ["g"]
    records = [AuditRecord(ts=None, tenant=t, prefix="/", server="s", tool="x", outcome="ok", latency_ms=1.0)
               for t in ("acme", "globex")]
    assert [r.tenant for r in Access(BOB).visible(records)] == ["globex"]


def test_may_names_only_tenant_actions():
    assert Access(ALICE).may("roll_back", "acme") and not Access(ALICE).may("export", "globex")
    with pytest.raises(ValueError, match="manage_users"):
        Access(ADMIN).may("manage_users", "acme")


def test_refusals_hide_what_members_may_not_see():
    """404 (NotFound) where the API hides existence today, 403 (Forbidden) where it does not, with its texts."""
    alice = Access(ALICE)
    with pytest.raises(NotFound, match=r"^document 'globex' not found$"):
        alice.require_tenant("globex", "document", to="roll_back")
    with pytest.raises(NotFound, match=r"^tenant 'globex' not found$"):
        alice.require_tenant("globex")
    with pytest.raises(NotFound, match=r"^user 'bob' not found$"):
        alice.require_user("bob")
    with pytest.raises(NotFound, match=r"^key 7 not found$"):
        Access(BOB).require_key(key("alice"))
    with pytest.raises(NotFound, match=r"^key 7 not found$"):
        alice.require_key(key("alice", revoked=True), secrets=True)
    with pytest.raises(NotFound, match=r"^chat 'C1' not found$"):
        Access(BOB).require_chat(chat("alice"), "C1")
    with pytest.raises(Forbidden, match=r"^only admins may do this$"):
        alice.require_admin()
    with pytest.raises(Forbidden, match=r"^url: only admins may have the server fetch a spec; send it as spec$"):
        alice.require_fetch_url()


def test_allowed_requests_raise_nothing():
    alice = Access(ALICE)
    alice.require_tenant("acme", "document", to="edit")
    alice.require_user("alice")
    alice.require_key(key("alice"), secrets=True)
    alice.require_chat(chat("alice"))
    Access(ADMIN).require_admin()
    Access(ADMIN).require_fetch_url()
    Access(ADMIN).require_key(key("bob", revoked=True))


def test_docstring_examples_run():
    result = doctest.testmod(access_module)
    assert result.attempted > 0 and result.failed == 0

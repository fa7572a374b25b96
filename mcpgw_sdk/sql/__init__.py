"""The parts of :class:`~mcpgw_sdk.sqlstore.SqlStore`, one module per concern over :mod:`.base`.

:mod:`.config` (revision, tenants, API keys, documents, versions), :mod:`.accounts`
(users, passwords, secrets), :mod:`.activity` (chats, audit) and :mod:`.values`
(small named values) each implement one interface of :mod:`mcpgw_sdk.store`.
"""

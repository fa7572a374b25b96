"""Held calls: a legacy upstream's call whose server→client request awaits a modern caller's retry.

A 2026-07-28 caller cannot be asked anything mid-call, so when a legacy upstream sends
``elicitation/create``, ``sampling/createMessage`` or ``roots/list`` during a modern caller's call, the
upstream call is kept pending here (a :class:`Held`, in this process's registry under a random id) and
the caller gets ``input_required`` with a ``requestState`` of ``held:<worker>:<id>`` (sealed by the
core). Its retry answers the pending request (:func:`resume`).

The held call lives in the worker that took the first request. A retry that reaches another worker or
replica is routed to that worker through Redis when the session store is Redis (:class:`Relay`: each
process that holds calls listens on ``relay:held:<worker>``; the retry publishes there and waits on a
reply channel of its own); without Redis it is refused with a clear ``-32602``. docs/eras.md tells
the whole story.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from mcpgw_sdk.client import McpError
from mcpgw_sdk.errors import StorageError
from mcpgw_sdk.settings import resolve

from . import InputRefused

log = logging.getLogger("mcpgw.upstream")

#: How a held call is named in the caller's (sealed) requestState: ``held:<worker>:<id>``.
HELD_PREFIX = "held:"
#: This process among gunicorn workers and replicas (the pid alone repeats across machines and restarts).
WORKER_ID = f"{os.getpid()}.{uuid.uuid4().hex[:12]}"
# ``inputRequests`` key prefix per server→client method (the kind of input asked for).
_KINDS = {"sampling/createMessage": "sampling", "elicitation/create": "elicitation", "roots/list": "roots"}
# Extra seconds a forwarding worker waits beyond the call's deadline for the owner's reply (two Redis hops).
_RELAY_MARGIN = 5.0


class Held:
    """A held call. Its upstream call runs in a thread of its own.

    :meth:`ask` (the upstream's ``on_request``) parks the request until :meth:`respond` or the
    ``held_call_timeout``; :meth:`turn` waits for the next request or the call's outcome.
    """

    def __init__(self, upstream: str, ttl: float, principal: str = ""):
        self.id = secrets.token_urlsafe(18)
        self.upstream = upstream
        self.principal = principal  # the caller's API key id or token subject ("" on an open router)
        self.ttl = ttl
        self.cond = threading.Condition()
        self.asked: tuple[str, str, dict[str, Any]] | None = None  # (key, method, params) awaiting an answer
        self.answer: dict[str, Any] | None = None
        self.outcome: dict[str, Any] | McpError | None = None  # a result, or the error of prompts/get, resources/read
        self.rounds = 0
        self.expires = 0.0
        self.on_expiry: Callable[[], None] | None = None

    @property
    def state(self) -> str:
        """The requestState naming this call (the core seals it for the caller)."""
        return f"{HELD_PREFIX}{WORKER_ID}:{self.id}"

    def ask(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Park the upstream's request until the caller's retry answers it (or it expires: an error to the upstream)."""
        with self.cond:
            self.rounds += 1
            self.asked = (f"{_KINDS[method]}-{self.rounds}", method, params)
            self.answer = None
            self.expires = time.monotonic() + self.ttl
            self.cond.notify_all()
            while self.answer is None and time.monotonic() < self.expires:
                self.cond.wait(max(0.0, self.expires - time.monotonic()))
            answer, self.answer = self.answer, None
            if answer is None:
                self.asked = None
        if answer is None:
            forget(self.id)
            if self.on_expiry is not None:
                self.on_expiry()
            raise McpError(-32603, f"the client did not answer {method} within {self.ttl:g}s (held call expired)")
        return answer

    def respond(self, answer: dict[str, Any]) -> bool:
        """Answer the pending request; ``False`` when none is pending (it expired)."""
        with self.cond:
            if self.asked is None or self.outcome is not None:
                return False
            self.asked, self.answer = None, answer
            self.cond.notify_all()
            return True

    def finish(self, outcome: dict[str, Any] | McpError) -> None:
        """The upstream call ended with ``outcome`` (a result, possibly a tool error; or an error to raise)."""
        with self.cond:
            self.outcome = outcome
            self.cond.notify_all()

    def turn(self, deadline: float) -> dict[str, Any] | McpError | tuple[str, str, dict[str, Any]] | None:
        """The outcome, the next pending request, or ``None`` when ``deadline`` passes first."""
        with self.cond:
            while self.outcome is None and self.asked is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)
            return self.outcome if self.outcome is not None else self.asked


_held: dict[str, Held] = {}
_held_lock = threading.Lock()


def forget(held_id: str) -> Held | None:
    """Take a held call out of the registry (its retry or its expiry has it now)."""
    with _held_lock:
        return _held.pop(held_id, None)


def refusal(principal: str, *, total: int | None = None, per_principal: int | None = None) -> str | None:
    """Why a new held call of ``principal`` is refused (``max_held_calls[_per_principal]``), or ``None``.

    ``total`` and ``per_principal`` are those settings (the caller's, resolved when it was built);
    left ``None`` they are resolved now.
    """
    if total is None or per_principal is None:
        resolved = resolve()
        total = resolved.max_held_calls if total is None else total
        per_principal = resolved.max_held_calls_per_principal if per_principal is None else per_principal
    total, per_principal = int(total), int(per_principal)
    with _held_lock:
        if total > 0 and len(_held) >= total:
            return f"too many held calls in this gateway process (max_held_calls={total}); try again later"
        if per_principal > 0 and sum(1 for h in _held.values() if h.principal == principal) >= per_principal:
            return (f"too many held calls of this caller (max_held_calls_per_principal={per_principal}); "
                    "answer or abandon one first")
    return None


def _park(held: Held, asked: tuple[str, str, dict[str, Any]]) -> dict[str, Any]:
    """Register ``held`` for its retry and answer the caller ``input_required`` with the pending request."""
    relay = _relay
    if relay is not None:
        relay.start()  # subscribed before the caller can retry, so another worker can reach this one
    with _held_lock:
        _held[held.id] = held
    key, method, params = asked
    return {"resultType": "input_required", "inputRequests": {key: {"method": method, "params": params}},
            "requestState": held.state}


def next_turn(held: Held, upstream: str, what: str, deadline: float) -> dict[str, Any] | McpError:
    """The held call's outcome (a result or an :class:`McpError`), or its pending request as ``input_required``."""
    turn = held.turn(deadline)
    if turn is None:  # neither answered nor asked within the caller's deadline: give it up
        if held.on_expiry is not None:
            held.on_expiry()
        return McpError(-32603, f"upstream {upstream}: {what} did not answer within the call's deadline")
    if isinstance(turn, tuple):
        return _park(held, turn)
    return turn


def _gone(upstream: str) -> InputRefused:
    return InputRefused(-32602, f"requestState refused: the held call of upstream {upstream} has expired or "
                        f"already finished (held calls wait {_wait():g}s); "
                        "start the request again without requestState")


def resume_here(upstream: str, what: str, held_id: str, principal: str, responses: dict[str, Any],
                deadline: float) -> dict[str, Any] | McpError:
    """A retry of a call held in this process: answer its pending request, then the next turn."""
    held = forget(held_id)
    if held is None or held.upstream != upstream or held.principal != principal:
        if held is not None:  # not this caller's or upstream's (the seal binds both: a forged relay message)
            with _held_lock:
                _held.setdefault(held.id, held)
        raise _gone(upstream)
    with held.cond:
        asked = held.asked
    if asked is None:
        return next_turn(held, upstream, what, deadline)
    if not isinstance(responses.get(asked[0]), dict):  # not answered: asked again
        return _park(held, asked)
    if not held.respond(responses[asked[0]]):
        raise InputRefused(-32602, f"requestState refused: the held call of upstream {upstream} has expired")
    return next_turn(held, upstream, what, deadline)


def resume(upstream: str, what: str, state: str, principal: str, responses: dict[str, Any],
           deadline: float) -> dict[str, Any] | McpError:
    """A modern caller's retry naming a held call (``state`` = ``held:<worker>:<id>``), wherever the call lives.

    Returns the next turn: a result, ``input_required``, or the call's :class:`McpError`; raises
    :class:`InputRefused` for a refused state and :class:`McpError` when the holder cannot be reached.
    """
    worker, _, held_id = state[len(HELD_PREFIX):].partition(":")
    if worker == WORKER_ID:
        return resume_here(upstream, what, held_id, principal, responses, deadline)
    relay = _relay
    if relay is None:
        raise InputRefused(-32602, f"requestState refused: the held call of upstream {upstream} lives in another "
                           "gateway worker and Redis routing is not configured (MCPGW_REDIS_URL); start the "
                           "request again without requestState")
    return relay.forward(worker, {"upstream": upstream, "what": what, "held": held_id, "principal": principal,
                                  "responses": responses}, deadline)


class Relay:
    """Routes held-call retries between processes over the Redis session store's relay channels."""

    def __init__(self, store: Any):
        self.store = store
        self._lock = threading.Lock()
        self._subscription: Any = None
        self._stop = threading.Event()

    def start(self) -> None:
        """Listen on this worker's channel (once; the subscription is confirmed when this returns)."""
        with self._lock:
            if self._subscription is not None or self._stop.is_set():
                return
            try:
                self._subscription = self.store.subscribe(f"held:{WORKER_ID}")
            except StorageError as exc:  # the call is still served here; only a retry elsewhere fails
                log.warning("held calls: cannot listen for retries from other workers: %s", exc)
                return
            threading.Thread(target=self._serve, args=(self._subscription,), daemon=True,
                             name="mcpgw-held-relay").start()

    def stop(self) -> None:
        """Stop listening (the process is shutting down)."""
        self._stop.set()
        with self._lock:
            subscription, self._subscription = self._subscription, None
        if subscription is not None:
            subscription.close()

    def _serve(self, subscription: Any) -> None:
        while not self._stop.is_set():
            message = subscription.get(1.0)
            if message is None:
                if subscription.closed:
                    with self._lock:
                        if self._subscription is subscription:
                            self._subscription = None  # listened again at the next held call
                    return
                continue
            threading.Thread(target=self._answer, args=(message,), daemon=True, name="mcpgw-held-retry").start()

    def _answer(self, message: dict[str, Any]) -> None:
        reply = message.get("reply")
        if not isinstance(reply, str):
            return
        out: dict[str, Any]
        try:
            left = min(float(message.get("left", 0)), _wait() * 2)
            turn = resume_here(str(message.get("upstream")), str(message.get("what")), str(message.get("held")),
                               str(message.get("principal")), message.get("responses") or {},
                               time.monotonic() + max(left, 0.0))
            out = {"error": {"code": turn.code, "message": turn.message}} if isinstance(turn, McpError) \
                else {"result": turn}
        except InputRefused as exc:
            out = {"error": {"code": exc.code, "message": exc.message, "refused": True}}
        except Exception as exc:  # noqa: BLE001 - the retrying worker reports it
            log.exception("held calls: answering a relayed retry failed")
            out = {"error": {"code": -32603, "message": f"the held call failed: {exc}"}}
        try:
            self.store.publish(f"reply:{reply}", out)
        except StorageError as exc:
            log.warning("held calls: cannot send a relayed retry's answer: %s", exc)

    def forward(self, worker: str, message: dict[str, Any], deadline: float) -> dict[str, Any] | McpError:
        """Send a retry to the worker holding the call and return its turn (``InputRefused`` as it refused)."""
        reply = secrets.token_urlsafe(18)
        left = max(0.0, deadline - time.monotonic())
        try:
            subscription = self.store.subscribe(f"reply:{reply}")
        except StorageError as exc:
            raise McpError(-32603, f"cannot reach the gateway worker holding the call: {exc}") from None
        try:
            listeners = self.store.publish(f"held:{worker}", {**message, "reply": reply, "left": left})
            if not listeners:
                raise InputRefused(-32602, f"requestState refused: the gateway worker holding the call of upstream "
                                   f"{message['upstream']} has stopped; start the request again without "
                                   "requestState")
            answer = subscription.get(left + _RELAY_MARGIN)
        except StorageError as exc:
            raise McpError(-32603, f"cannot reach the gateway worker holding the call: {exc}") from None
        finally:
            subscription.close()
        if answer is None:
            raise McpError(-32603, "the gateway worker holding the call did not answer in time")
        error = answer.get("error")
        if isinstance(error, dict):
            code, text = int(error.get("code", -32603)), str(error.get("message", "refused"))
            if error.get("refused"):
                raise InputRefused(code, text)
            return McpError(code, text)
        return answer.get("result") or {}


_relay: Relay | None = None
_held_call_timeout: float | None = None  # the configuring gateway's setting; None: resolve it when needed


def _wait() -> float:
    """The ``held_call_timeout`` setting of the gateway that configured this module."""
    wait = _held_call_timeout
    return float(resolve().held_call_timeout if wait is None else wait)


def configure(sessions: Any, *, held_call_timeout: float | None = None) -> None:
    """Route retries between processes through ``sessions`` when it can (the Redis store); else none.

    ``held_call_timeout`` is the gateway's setting (``None``: resolved when needed).
    """
    global _relay, _held_call_timeout
    _held_call_timeout = held_call_timeout
    previous, _relay = _relay, (Relay(sessions) if sessions.relays else None)
    if previous is not None:
        previous.stop()


def shutdown() -> None:
    """Stop listening for relayed retries (and forget the configuring gateway's ``held_call_timeout``)."""
    global _relay, _held_call_timeout
    _held_call_timeout = None
    previous, _relay = _relay, None
    if previous is not None:
        previous.stop()

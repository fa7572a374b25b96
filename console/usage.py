"""The Usage page's figures from audit records: calls over time, error rate, latency percentiles."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd

from mcpgw_sdk.records import AuditRecord
from mcpgw_sdk.store import Store

COLUMNS = ["ts", "tenant", "prefix", "server", "tool", "outcome", "latency_ms", "user", "error"]


def load(store: Store, *, since: datetime | None = None, tenants: list[str] | None = None,
         limit: int = 20000) -> pd.DataFrame:
    """Audit records since ``since`` (optionally only these tenants) as a DataFrame, oldest first."""
    records: list[AuditRecord] = []
    offset = 0
    page = min(limit, 5000)
    while len(records) < limit:
        batch = store.query_audit(since=since, limit=page, offset=offset)
        records.extend(batch)
        if len(batch) < page:
            break
        offset += page
    if tenants is not None:
        records = [r for r in records if r.tenant in tenants]
    return frame(records)


def frame(records: list[AuditRecord]) -> pd.DataFrame:
    """Records as a DataFrame with :data:`COLUMNS`, oldest first."""
    rows = [{c: getattr(r, c) for c in COLUMNS} for r in records]
    df = pd.DataFrame(rows, columns=COLUMNS)
    if not df.empty:
        df["ts"] = pd.to_datetime(df["ts"], utc=True)
        df["latency_ms"] = df["latency_ms"].astype(float)
        df = df.sort_values("ts").reset_index(drop=True)
    return df


def since(period: str, *, now: datetime | None = None) -> datetime:
    """The start of a period named ``1h``, ``24h``, ``7d`` or ``30d``."""
    now = now or datetime.now(timezone.utc)
    amount, unit = int(period[:-1]), period[-1]
    return now - (timedelta(hours=amount) if unit == "h" else timedelta(days=amount))


def bucket(period: str) -> str:
    """A pandas frequency that gives a readable chart for the period."""
    return {"1h": "1min", "24h": "15min", "7d": "1h"}.get(period, "6h")


def over_time(df: pd.DataFrame, freq: str) -> pd.DataFrame:
    """Calls, errors and latency p50/p95 per time bucket (index: bucket start)."""
    columns = ["calls", "errors", "p50_ms", "p95_ms"]
    if df.empty:
        return pd.DataFrame(columns=columns)
    series = df.set_index("ts")
    calls = series["tool"].resample(freq).count().rename("calls")
    errors = (series["outcome"] != "ok").resample(freq).sum().rename("errors").astype(int)
    latency = series["latency_ms"].resample(freq)
    out = pd.concat([calls, errors, latency.quantile(0.5).rename("p50_ms"),
                     latency.quantile(0.95).rename("p95_ms")], axis=1)
    out[["calls", "errors"]] = out[["calls", "errors"]].fillna(0).astype(int)
    return out[columns]


def latency_as_line(timeline: pd.DataFrame) -> bool:
    """Whether the latency of :func:`over_time` can be drawn as lines.

    A line needs two buckets with calls; with fewer it would be blank, so the page draws bars.
    """
    return int(timeline[["p50_ms", "p95_ms"]].notna().any(axis=1).sum()) >= 2 if not timeline.empty else False


def summary(df: pd.DataFrame) -> dict[str, float]:
    """Total calls, error rate (0..1) and overall p50/p95 latency."""
    if df.empty:
        return {"calls": 0, "error_rate": 0.0, "p50_ms": 0.0, "p95_ms": 0.0}
    return {"calls": int(len(df)), "error_rate": float((df["outcome"] != "ok").mean()),
            "p50_ms": float(df["latency_ms"].quantile(0.5)), "p95_ms": float(df["latency_ms"].quantile(0.95))}


def per_tool(df: pd.DataFrame) -> pd.DataFrame:
    """Per tool: calls, errors, error rate and latency p50/p90/p99/max, busiest first."""
    cols = ["prefix", "tool", "calls", "errors", "error_rate", "p50_ms", "p90_ms", "p99_ms", "max_ms"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    grouped = df.assign(failed=df["outcome"] != "ok").groupby(["prefix", "tool"])
    out = grouped.agg(calls=("tool", "size"), errors=("failed", "sum"),
                      p50_ms=("latency_ms", lambda s: s.quantile(0.5)),
                      p90_ms=("latency_ms", lambda s: s.quantile(0.9)),
                      p99_ms=("latency_ms", lambda s: s.quantile(0.99)),
                      max_ms=("latency_ms", "max")).reset_index()
    out["errors"] = out["errors"].astype(int)
    out["error_rate"] = out["errors"] / out["calls"]
    return out[cols].sort_values(["calls", "tool"], ascending=[False, True]).reset_index(drop=True)


def slowest(df: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    """The ``n`` slowest calls."""
    return df.sort_values("latency_ms", ascending=False).head(n).reset_index(drop=True)


def failing(df: pd.DataFrame, n: int = 20) -> pd.DataFrame:
    """The ``n`` most recent calls that did not end ``ok``."""
    return df[df["outcome"] != "ok"].sort_values("ts", ascending=False).head(n).reset_index(drop=True)

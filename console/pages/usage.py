"""Usage: tool calls over time, error rate, latency percentiles per tool, slowest and failing calls."""

import streamlit as st

from console import ui, usage
from mcpgw_sdk.access import Access

user = ui.require_user()
store = ui.store()

st.title("Usage")
period = st.segmented_control("Period", ["1h", "24h", "7d", "30d"], default="24h", key="usage_period") or "24h"
visible = Access(user).visible_tenants()
tenants = None if visible is None else sorted(visible)
df = usage.load(store, since=usage.since(period), tenants=tenants)
if df.empty:
    st.info("No tool calls in this period yet.")
    st.stop()
summary = usage.summary(df)
cols = st.columns(4)
cols[0].metric("Tool calls", f"{summary['calls']:,}")
cols[1].metric("Error rate", f"{summary['error_rate']:.1%}")
cols[2].metric("p50 latency", f"{summary['p50_ms']:.0f} ms")
cols[3].metric("p95 latency", f"{summary['p95_ms']:.0f} ms")

timeline = usage.over_time(df, usage.bucket(period))
cols = st.columns(2)
with cols[0]:
    st.subheader("Calls over time")
    st.bar_chart(timeline[["calls", "errors"]], stack=False)
with cols[1]:
    st.subheader("Latency over time (ms)")
    if usage.latency_as_line(timeline):
        st.line_chart(timeline[["p50_ms", "p95_ms"]])
    else:  # one bucket: a line of one point draws nothing
        st.bar_chart(timeline[["p50_ms", "p95_ms"]].dropna(how="all"), stack=False)
st.subheader("Per tool")
st.dataframe(usage.per_tool(df), hide_index=True, width="stretch",
             column_config={"error_rate": st.column_config.NumberColumn(format="percent"),
                            **{c: st.column_config.NumberColumn(format="%.1f")
                               for c in ("p50_ms", "p90_ms", "p99_ms", "max_ms")}})
cols = st.columns(2)
with cols[0]:
    st.subheader("Slowest calls")
    st.dataframe(usage.slowest(df)[["ts", "prefix", "tool", "latency_ms", "outcome"]], hide_index=True)
with cols[1]:
    st.subheader("Failing calls")
    failing = usage.failing(df)
    if failing.empty:
        st.caption("No failing calls in this period.")
    else:
        st.dataframe(failing[["ts", "prefix", "tool", "outcome", "error"]], hide_index=True)

"""Prometheus metrics of the gateway, in a registry of its own (one per app)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    """The gateway's counters, gauges and histograms."""

    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.http_requests = Counter("mcpgw_http_requests_total", "HTTP requests by endpoint kind and status.",
                                     ["endpoint", "status"], registry=r)
        self.mcp_requests = Counter("mcpgw_mcp_requests_total", "MCP messages by method.", ["method"], registry=r)
        self.tool_calls = Counter("mcpgw_tool_calls_total", "Tool calls by prefix, tool and outcome.",
                                  ["prefix", "tool", "outcome"], registry=r)
        self.tool_latency = Histogram("mcpgw_tool_call_seconds", "Tool call latency (backend time).",
                                      ["prefix"], buckets=_BUCKETS, registry=r)
        self.request_latency = Histogram("mcpgw_mcp_request_seconds", "MCP POST handling time.",
                                         buckets=_BUCKETS, registry=r)
        self.sessions = Gauge("mcpgw_open_sessions", "Open MCP sessions.", registry=r)
        self.streams = Gauge("mcpgw_open_streams", "Open SSE and GET streams.", registry=r)
        self.cancelled = Counter("mcpgw_cancelled_requests_total",
                                 "Modern requests cancelled because the client closed the response stream.", registry=r)
        self.reloads = Counter("mcpgw_reloads_total", "Config reloads by outcome.", ["outcome"], registry=r)
        self.revision = Gauge("mcpgw_config_revision", "Config revision being served.", registry=r)
        self.audit_dropped = Counter("mcpgw_audit_dropped_total", "Audit records dropped (queue full or write failed).",
                                     registry=r)
        self.upstream_state = Gauge("mcpgw_upstream_state", "Upstream MCP servers: 1 for each one's current state "
                                    "(connecting, ready, failed, stopped).", ["document", "server", "state"],
                                    registry=r)
        self.upstream_restarts = Gauge("mcpgw_upstream_restarts", "Times each upstream MCP server was restarted.",
                                       ["document", "server"], registry=r)
        self.upstream_sessions = Gauge("mcpgw_upstream_sessions", "Per-session upstream sessions held open.",
                                       ["document", "server"], registry=r)

    def set_upstreams(self, statuses: list[dict]) -> None:
        """Replace the upstream gauges with ``statuses`` (``UpstreamServer.status()`` dicts plus ``document``)."""
        for gauge in (self.upstream_state, self.upstream_restarts, self.upstream_sessions):
            gauge.clear()  # servers removed by a reload must disappear, not keep their last value
        for st in statuses:
            labels = (st.get("document") or "", st["server"])
            self.upstream_state.labels(*labels, st["state"]).set(1)
            self.upstream_restarts.labels(*labels).set(st.get("restarts") or 0)
            self.upstream_sessions.labels(*labels).set(st.get("sessions") or 0)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)

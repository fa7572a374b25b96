"""FastMCP's proxy (``fastmcp.server.create_proxy``) in front of one upstream, over Streamable HTTP (JSON answers).

Run by ``bench/upstream_bench.py`` with the interpreter of a separate virtualenv that has ``fastmcp``:
``python bench/fastmcp_proxy.py --port N (--url URL | --stdio PROGRAM ARG...)``.
"""

from __future__ import annotations

import argparse


def main() -> None:
    """Serve the proxy until killed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="port to serve /mcp on")
    parser.add_argument("--url", help="a Streamable HTTP upstream")
    parser.add_argument("--stdio", nargs=argparse.REMAINDER, help="a stdio upstream: program and arguments")
    args = parser.parse_args()
    from fastmcp.client.transports import StdioTransport, StreamableHttpTransport
    from fastmcp.server import create_proxy

    target = StreamableHttpTransport(args.url) if args.url else StdioTransport(args.stdio[0], args.stdio[1:])
    create_proxy(target).run(transport="streamable-http", host="127.0.0.1", port=args.port, path="/mcp",
                             json_response=True, show_banner=False, log_level="warning")


if __name__ == "__main__":
    main()

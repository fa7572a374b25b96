"""Profile building the gateway's snapshot of many small documents, in process. Prints; never asserts.

``python bench/profile_reload.py [--documents N] [--top N]``

Writes ``N`` one-tool documents (the same shape as ``scale_bench.py``'s reload figure) into a
temporary SQLite database, loads the config set once, then times ``build_snapshot`` twice: once
under :mod:`cProfile` (its cumulative table says where a reload's time goes: validation, backends,
change digests, routes) and once plain.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import pstats
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from gateway_bench import one_tool_documents  # noqa: E402

from gateway_server.backends import make_backend  # noqa: E402
from gateway_server.snapshot import build_snapshot  # noqa: E402
from mcpgw_sdk.settings import resolve  # noqa: E402
from mcpgw_sdk.sqlstore import SqlStore  # noqa: E402


def main() -> None:
    """Parse the flags, build the database, print the timings and the profile."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=10000, help="one-tool documents (default 10000)")
    parser.add_argument("--top", type=int, default=30, help="rows of the cumulative profile (default 30)")
    args = parser.parse_args()
    store = SqlStore(f"sqlite:///{tempfile.mkdtemp(prefix='mcpgw-reload-')}/bench.db")
    store.upgrade()
    store.import_documents(one_tool_documents(args.documents, "http://127.0.0.1:9", "many"), author="bench")
    # Backends get the settings resolved once, as the gateway's reloader hands them over.
    make = functools.partial(make_backend, settings=resolve())
    started, cpu = time.perf_counter(), time.process_time()
    config = store.load_config()
    print(f"load_config of {args.documents} documents: {time.perf_counter() - started:.3f} s "
          f"(CPU {time.process_time() - cpu:.3f} s)")
    profile = cProfile.Profile()
    started = time.perf_counter()
    profile.enable()
    build_snapshot(config, None, make=make)
    profile.disable()
    print(f"build_snapshot under cProfile: {time.perf_counter() - started:.3f} s")
    started, cpu = time.perf_counter(), time.process_time()
    build_snapshot(config, None, make=make)
    print(f"build_snapshot: {time.perf_counter() - started:.3f} s (CPU {time.process_time() - cpu:.3f} s)")
    pstats.Stats(profile).sort_stats("cumulative").print_stats(args.top)
    store.close()


if __name__ == "__main__":
    main()

"""SQLite store write throughput (issue 5): 1 and 8 writer processes appending messages at once.

    python scripts/bench/store_writers.py [--writers 1,8] [--rows 500] [--json store.json]

A fresh database made by `Store.open` (migrations, WAL, busy timeout) in a temporary directory. Each
writer is its own process with its own `Store.open`: it creates one conversation, waits at a
barrier until every writer is ready, then calls `Store.add_message` --rows times (one short write
transaction each, alternating user/assistant messages of ~200 characters, each the child of the
previous), timing every call. Measured per writer count: rows/s = all rows / the time from the
barrier to the last writer done; p50/p99 write latency over every call; rows lost = rows expected
minus `SELECT count(*) FROM messages` afterwards (expected 0), and errors raised by writers.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import common

TEXT = "My camera went offline after the firmware update and the status light keeps blinking amber. " * 2


def writer(path: str, rows: int, barrier, results) -> None:  # noqa: ANN001
    from assistant.store import Store

    store = Store.open(Path(path))
    conversation = store.create_conversation("bench", "")
    latencies, errors = [], 0
    parent = None
    barrier.wait()
    for i in range(rows):
        started = time.perf_counter()
        try:
            message = store.add_message(conversation.id, "user" if i % 2 == 0 else "assistant", f"{i} {TEXT}", parent_id=parent)
            parent = message.id
        except Exception:  # noqa: BLE001 - counted and reported
            errors += 1
        latencies.append(time.perf_counter() - started)
    done = time.perf_counter()
    store.close()
    results.put((latencies, errors, done))


def run(writers: int, rows: int) -> dict:
    from assistant.store import Store

    with tempfile.TemporaryDirectory(prefix="bench-store-") as scratch:
        path = Path(scratch) / "assistant.db"
        Store.open(path).close()  # migrations once, before the writers start
        context = multiprocessing.get_context("fork")
        barrier, results = context.Barrier(writers + 1), context.Queue()
        processes = [context.Process(target=writer, args=(str(path), rows, barrier, results)) for _ in range(writers)]
        for process in processes:
            process.start()
        barrier.wait()
        started = time.perf_counter()
        collected = [results.get(timeout=600) for _ in processes]
        for process in processes:
            process.join()
        finished = max(done for _, _, done in collected)
        with sqlite3.connect(path) as db:
            (stored,) = db.execute("SELECT count(*) FROM messages").fetchone()
    latencies = [value * 1000 for lat, _, _ in collected for value in lat]
    expected = writers * rows
    return {
        "writers": writers, "rows_per_writer": rows, "rows_per_s": expected / (finished - started),
        "latency_ms_p50": statistics.median(latencies), "latency_ms_p99": common.percentile(latencies, 0.99),
        "latency_ms_max": max(latencies), "rows_expected": expected, "rows_stored": stored,
        "rows_lost": expected - stored, "errors": sum(errors for _, errors, _ in collected),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", default="1,8")
    parser.add_argument("--rows", type=int, default=500, help="rows per writer")
    parser.add_argument("--json", default="store.json", help="file name under $OUT")
    args = parser.parse_args()

    results = [run(int(n), args.rows) for n in args.writers.split(",")]
    print(f"device: {common.device_name()}; {args.rows} add_message calls per writer, one transaction each")
    print(f"{'writers':>7} {'rows/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'stored':>8} {'lost':>5} {'errors':>6}")
    for r in results:
        print(f"{r['writers']:>7} {r['rows_per_s']:>9.0f} {r['latency_ms_p50']:>8.2f} {r['latency_ms_p99']:>8.2f} "
              f"{r['latency_ms_max']:>8.1f} {r['rows_stored']:>8} {r['rows_lost']:>5} {r['errors']:>6}")
    common.write_json(args.json, {"bench": "store_writers", "device": common.device_name(), "results": results})
    return 1 if any(r["rows_lost"] or r["errors"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The floor under a SQLite commit: the statements of one `append` (a durable step's commit),
run directly with Python's built-in sqlite3 module, with no async runtime or worker thread.

Uses Steward's own SQLite migrations and the connection settings of `SqliteStore` (WAL,
synchronous=NORMAL, foreign keys). Compare with `steward-bench commit --db sqlite`.

    python3 bench/sqlite_floor.py [APPENDS] [full|narrow|none]

The second argument picks the run-row update: `full` is Steward's `UPDATE_RUN` (it sets
`wake_at` and `lease_expires_at`, so SQLite maintains the indexes on them at every commit),
`narrow` sets only `updated_at`, `none` leaves the row alone.
"""

import glob
import json
import os
import sqlite3
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
MIGRATIONS = sorted(glob.glob(os.path.join(ROOT, "crates/steward-store-sql/migrations/sqlite/*.sql")))

LEASE_AND_SEQ = (
    "SELECT status, lease_owner, (SELECT COALESCE(MAX(seq), 0) FROM run_events WHERE run_id = ?1) "
    "AS last_seq FROM runs WHERE id = ?1"
)
NARROW_UPDATE = "UPDATE runs SET updated_at = ?2 WHERE id = ?1"
UPDATE_RUN = (
    "UPDATE runs SET status = COALESCE(?2, status), output = COALESCE(?3, output), "
    "error = COALESCE(?4, error), finished_at = COALESCE(?5, finished_at), updated_at = ?6, "
    "lease_owner = CASE WHEN ?7 THEN NULL ELSE lease_owner END, "
    "lease_expires_at = CASE WHEN ?7 THEN NULL ELSE lease_expires_at END, "
    "wake_at = CASE WHEN ?7 THEN NULL ELSE wake_at END WHERE id = ?1"
)


def insert_events(n):
    rows = ", ".join("(?, ?, ?, ?, ?, ?)" for _ in range(n))
    return "INSERT INTO run_events (run_id, seq, at, kind, step_key, data) VALUES " + rows


def main():
    appends = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    update = sys.argv[2] if len(sys.argv) > 2 else "full"
    assert update in ("full", "narrow", "none"), "the update is full, narrow or none"
    with tempfile.TemporaryDirectory(prefix="steward-floor-") as d:
        db = sqlite3.connect(os.path.join(d, "steward.db"), isolation_level=None)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA foreign_keys = ON")
        for path in MIGRATIONS:
            with open(path) as f:
                db.executescript(f.read())
        now = int(time.time() * 1000)
        db.execute("INSERT INTO flows VALUES ('f', 'default', 'bench', ?1, ?1, NULL)", (now,))
        db.execute(
            "INSERT INTO flow_versions VALUES ('v', 'default', 'f', 1, 'b.yaml', '', '', NULL, ?1)", (now,)
        )
        db.execute(
            "INSERT INTO runs (id, workspace_id, flow_version_id, flow_name, status, inputs, created_at, "
            "updated_at, wake_at, lease_owner, lease_expires_at) "
            "VALUES ('r', 'default', 'v', 'bench', 'running', '{}', ?1, ?1, ?1, 'me', ?2)",
            (now, now + 600_000),
        )
        seq = 0
        spent = {1: 0.0, 3: 0.0}
        count = {1: 0, 3: 0}
        for i in range(appends):
            n = 3 if i % 2 == 0 else 1
            events = [("step_succeeded", f"s{i}", {"type": "step_succeeded", "key": f"s{i}", "output": i})]
            if n == 3:
                events.append(("step_scheduled", f"s{i + 1}", {"type": "step_scheduled", "key": f"s{i + 1}"}))
                events.append(("step_started", f"s{i + 1}", {"type": "step_started", "key": f"s{i + 1}", "attempt": 1}))
            params = []
            for k, (kind, key, data) in enumerate(events):
                params += ["r", seq + 1 + k, now, kind, key, json.dumps(data)]
            start = time.perf_counter()
            db.execute("BEGIN IMMEDIATE")
            status, owner, last = db.execute(LEASE_AND_SEQ, ("r",)).fetchone()
            assert owner == "me" and last == seq
            db.execute(insert_events(n), params)
            if update == "full":
                db.execute(UPDATE_RUN, ("r", None, None, None, None, now, False))
            elif update == "narrow":
                db.execute(NARROW_UPDATE, ("r", now))
            db.execute("COMMIT")
            spent[n] += time.perf_counter() - start
            count[n] += 1
            seq += n
        us3 = spent[3] / count[3] * 1e6
        us1 = spent[1] / count[1] * 1e6
        print(json.dumps({
            "scenario": "sqlite-floor",
            "sqlite": sqlite3.sqlite_version,
            "appends": appends,
            "update": update,
            "append_3_events_us": round(us3, 3),
            "append_1_event_us": round(us1, 3),
        }))


if __name__ == "__main__":
    main()

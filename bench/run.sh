#!/usr/bin/env bash
# Runs every benchmark scenario on SQLite and PostgreSQL and prints a Markdown table.
#
#   bench/run.sh
#
# Builds `steward` and `steward-bench` in release mode, makes sure PostgreSQL answers on
# 127.0.0.1:5432 (scripts/ensure-postgres.sh), then runs step-overhead, commit, throughput,
# waiting-memory, webhook, agent-loop and prune on both databases with their default
# repetitions. The raw JSON lines go to
# bench/results/<date>.jsonl (with a line describing the machine and its load average before
# and after), the table to stdout and bench/results/<date>.md.
#
# Each scenario is stopped after BENCH_TIMEOUT seconds (default 300; prune, which seeds and
# prunes 1,000,000 runs three times, after PRUNE_TIMEOUT, default 3600), so the script always
# ends; the scenarios take about 5 minutes on 2 cores without prune and 40 with it, plus the
# build. SCENARIOS and DBS pick
# a subset, and BENCH_TAG names the results apart from other runs of the same day, e.g.
#   SCENARIOS=step-overhead DBS=sqlite BENCH_TAG=try2 bench/run.sh   # -> <date>-try2.jsonl
#   SCENARIOS=agent-loop BENCH_TAG=agent bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

scenarios="${SCENARIOS:-step-overhead commit throughput waiting-memory webhook agent-loop prune}"
dbs="${DBS:-sqlite postgres}"
limit="${BENCH_TIMEOUT:-300}"

cargo build --release -p steward -p steward-bench
scripts/ensure-postgres.sh

bin="${CARGO_TARGET_DIR:-target}/release/steward-bench"
mkdir -p bench/results
out="bench/results/$(date -u +%Y-%m-%d)${BENCH_TAG:+-$BENCH_TAG}.jsonl"
"$bin" machine start | tee "$out"

status=0
for scenario in $scenarios; do
  for db in $dbs; do
    echo "== $scenario on $db" >&2
    this_limit="$limit"
    if [ "$scenario" = prune ]; then this_limit="${PRUNE_TIMEOUT:-3600}"; fi
    if ! timeout --kill-after=10 "$this_limit" "$bin" "$scenario" --db "$db" --timeout-secs "$this_limit" | tee -a "$out"; then
      echo "!! $scenario on $db failed or timed out after ${this_limit}s" >&2
      status=1
    fi
  done
done

"$bin" machine end | tee -a "$out"
echo "Raw results: $out" >&2
"$bin" table "$out" | tee "${out%.jsonl}.md"
exit "$status"

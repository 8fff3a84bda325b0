#!/usr/bin/env bash
# Runs the whole test suite: starts PostgreSQL if needed (the storage, executor and crash
# tests run on both SQLite and PostgreSQL), then every crate's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-postgres.sh
cargo test --workspace --locked "$@"

#!/usr/bin/env bash
# The long version of tests/etcd.rs's fault test: ROUNDS rounds (default 5) with each phase
# PHASE_MS long (default 10000): sends through two servers on a three-member etcd cluster while a
# follower, the leader and a server are killed with SIGKILL and brought back. Prints each round's
# counts (acknowledged, failed, longest outage) and fails on a lost or duplicated send.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rounds="${ROUNDS:-5}"
export MESH_FAULT_PHASE_MS="${PHASE_MS:-10000}"
cargo test --release --test etcd --no-run >/dev/null 2>&1 || cargo test --release --test etcd --no-run
for round in $(seq 1 "$rounds"); do
  out=$(cargo test --release --test etcd acknowledged -- --nocapture 2>&1) || { echo "$out" >&2; echo "round $round: FAILED" >&2; exit 1; }
  echo "round $round: $(grep -m1 '^through A' <<<"$out")"
done

#!/usr/bin/env bash
# Run the official MCP conformance suite (@modelcontextprotocol/conformance, pinned in
# package-lock.json) against `mesh-mcp serve --http 127.0.0.1:0 --db <tmp>/conformance.db`:
# every SERVER scenario that applies to a server that declares only the `tools` capability and
# has no test-fixture tools. README.md in this folder lists every scenario the suite has, with
# the reason each excluded one does not apply. Then http_checks.py checks the streamable-HTTP
# session lifecycle and the Origin rule, which the suite (0.1.16) has no scenario for.
# Fails if any applicable scenario or check fails. Prints `conformance: N passed, M failed`
# (scenarios and checks) last. Results of each scenario are kept under $CONFORMANCE_OUT if set.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
tp_require_installed

# Applicable server scenarios (name: what it checks). Keep in sync with README.md.
SCENARIOS=(
  server-initialize            # initialize handshake + initialized notification
  ping                         # ping answers {}
  tools-list                   # tools/list: name, description, inputSchema on every tool
  server-sse-multiple-streams  # three concurrent POSTs on one session, each SSE stream usable
  server-sse-polling           # POST SSE stream: priming event (id, empty data) first + retry
                               # field (SEP-1699); its fixture tool test_reconnection is absent,
                               # so the call gets -32602 and the resume check can only WARN
  dns-rebinding-protection     # non-localhost Host/Origin -> 4xx; localhost -> 2xx
  resources-list               # resources/list: uri and name on every resource (mesh://swarms)
)

WORK="$(mktemp -d "${TMPDIR:-/tmp}/mesh-conformance.XXXXXX")"
OUT="${CONFORMANCE_OUT:-$WORK/results}"
mkdir -p "$OUT"
cleanup() { tp_stop_http; rm -rf "$WORK"; }
trap cleanup EXIT

# The suite must still have every scenario we run (a renamed scenario would otherwise be an
# error that looks like a server failure).
listed="$(tp_conformance list --server 2>/dev/null)"
for s in "${SCENARIOS[@]}"; do
  grep -q -- "- $s " <<<"$listed" || tp_die "conformance: the suite has no server scenario '$s'; scenarios: $listed"
done

start=$SECONDS
PASSED=0
FAILED=0
FAILURES=()

if ! tp_start_http "$WORK/conformance.db" "$WORK/server.log"; then
  printf 'conformance: 0 passed, 1 failed\n'
  tp_die "conformance: could not start mesh-mcp serve --http"
fi
URL="$TP_HTTP_BASE/mcp"
printf '== conformance: server at %s ==\n' "$URL"

for s in "${SCENARIOS[@]}"; do
  printf '\n== conformance scenario: %s ==\n' "$s"
  t0=$SECONDS
  # Each scenario gets 120 s; none takes more than a few seconds against a working server.
  timeout 120 "$NODE22" "$CONFORMANCE_JS" server --url "$URL" --scenario "$s" -o "$OUT" >"$WORK/$s.log" 2>&1
  rc=$?
  sed -e 's/\x1b\[[0-9;]*m//g' -e 's/^/  | /' "$WORK/$s.log"
  # A scenario passes when the runner exits 0 (it exits 1 on any FAILURE check) and its
  # summary line says `Passed: X/Y, 0 failed` (WARNING checks are reported, not failures).
  if [[ $rc -eq 0 ]] && sed "s/\x1b\[[0-9;]*m//g" "$WORK/$s.log" | grep -qE "^Passed: [0-9]+/[0-9]+, 0 failed"; then
    PASSED=$((PASSED + 1)); printf '  ok   %s (%ss)\n' "$s" "$((SECONDS - t0))"
  else
    FAILED=$((FAILED + 1)); FAILURES+=("scenario $s (exit $rc)"); printf '  FAIL %s (exit %s)\n' "$s" "$rc"
  fi
  if ! kill -0 "$TP_HTTP_PID" 2>/dev/null; then
    FAILED=$((FAILED + 1)); FAILURES+=("the server died during $s")
    printf '  FAIL the server process died during %s; its stderr:\n' "$s"
    sed 's/^/  | /' "$WORK/server.log"
    tp_start_http "$WORK/conformance.db" "$WORK/server.log" || break
    URL="$TP_HTTP_BASE/mcp"
  fi
done

printf '\n== conformance: streamable HTTP session lifecycle and Origin checks (http_checks.py) ==\n'
"$TP_PY" "$TP_DIR/http_checks.py" "$TP_HTTP_BASE" >"$WORK/http_checks.log" 2>&1
rc=$?
sed 's/^/  | /' "$WORK/http_checks.log"
if [[ $rc -eq 0 ]]; then
  PASSED=$((PASSED + 1)); printf '  ok   http_checks.py\n'
else
  FAILED=$((FAILED + 1)); FAILURES+=("http_checks.py (exit $rc)"); printf '  FAIL http_checks.py (exit %s)\n' "$rc"
fi
tp_stop_http

printf '\n'
if ((FAILED > 0)); then
  printf 'conformance failures:\n'
  printf '  - %s\n' "${FAILURES[@]}"
  [[ -n "${CONFORMANCE_OUT:-}" ]] && printf 'scenario results (checks.json per scenario) are in %s\n' "$OUT"
fi
printf 'conformance: done in %ss\n' "$((SECONDS - start))"
printf 'conformance: %d passed, %d failed\n' "$PASSED" "$FAILED"
((FAILED == 0))

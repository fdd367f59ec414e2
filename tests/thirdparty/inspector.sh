#!/usr/bin/env bash
# Drive mesh-mcp with the official MCP Inspector CLI (v2, `inspector --cli`):
#   1. stdio: `mesh-mcp serve --db <tmp>/stdio.db`, one server process per Inspector call
#      (state carries over through the database file): tools/list with --strict (the
#      Inspector's tool-schema portability check; exit 6 on an error-severity finding), then
#      every tool in a sensible order, failing on any unexpected isError (Inspector exit 5)
#      or a result that does not say what it should.
#   2. streamable HTTP: the same against `mesh-mcp serve --http 127.0.0.1:0` at /mcp.
#   3. legacy SSE: tools/list --strict and a few calls against /sse on the same server.
# MESH_MCP_SKIP_HTTP=1 skips 2 and 3 (loudly); otherwise an HTTP failure fails the script.
# Prints `inspector: N passed, M failed` last; exits non-zero if anything failed.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
tp_require_installed

WORK="$(mktemp -d "${TMPDIR:-/tmp}/mesh-inspector.XXXXXX")"
cleanup() { tp_stop_http; rm -rf "$WORK"; }
trap cleanup EXIT

PASSED=0
FAILED=0
FAILURES=()
TARGET=()   # how the Inspector reaches the server, per transport
LABEL=""
LAST="$WORK/last.json"   # the parsed JSON of the last tool result

pass() { PASSED=$((PASSED + 1)); printf '  ok   %s\n' "$*"; }
fail() {
  FAILED=$((FAILED + 1)); FAILURES+=("$LABEL: $*"); printf '  FAIL %s\n' "$*"
}

# jq-like helper with Python: jget FILE PYTHON-EXPR (d is the parsed JSON). Prints the value
# (strings bare, everything else as JSON); exits non-zero if the expression raises.
jget() {
  python3 - "$1" "$2" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
v = eval(sys.argv[2], {"d": d})
print(v if isinstance(v, str) else json.dumps(v))
PY
}

# check DESCRIPTION PYTHON-BOOL-EXPR: assert over the last tool result (d).
check() {
  local what="$1" expr="$2" got
  got="$(jget "$LAST" "bool($expr)" 2>&1)"
  if [[ "$got" == "true" ]]; then
    return 0
  fi
  fail "$what: expected $expr; result: $(head -c 600 "$LAST")"
  return 1
}

# The arguments as shown in the log: agent tokens elided, cut to 110 characters.
shown() { printf '%s' "$1" | sed -E 's/"(agentToken|ownerToken)":"[^"]*"/"\1":"…"/g' | head -c 110; }

# tool NAME ARGS-JSON [EXPECTED-ERROR-CODE]: call a tool through the Inspector. Without an
# expected error code, isError fails the check; with one, the call must fail with it.
# On success the result's text (compact JSON) is parsed into $LAST.
tool() {
  local name="$1" args="$2" want="${3:-}" out="$WORK/out.json" err="$WORK/err.txt" rc
  tp_inspector --format json --method tools/call --tool-name "$name" --tool-args-json "$args" \
    "${TARGET[@]}" >"$out" 2>"$err"
  rc=$?
  if ! jget "$out" 'd["result"]["content"][0]["text"]' >"$WORK/text.json" 2>/dev/null ||
     ! python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$WORK/text.json" 2>/dev/null; then
    fail "$name $args: no JSON text result (Inspector exit $rc); stdout: $(head -c 600 "$out"); stderr: $(tail -c 600 "$err")"
    return 1
  fi
  cp "$WORK/text.json" "$LAST"
  local is_error
  is_error="$(jget "$out" 'd["result"].get("isError", False)')"
  if [[ -z "$want" ]]; then
    if [[ $rc -ne 0 || "$is_error" == "true" ]]; then
      fail "$name $args: unexpected isError (Inspector exit $rc): $(head -c 600 "$LAST")"
      return 1
    fi
    pass "$name $(shown "$args")"
  else
    local code
    code="$(jget "$LAST" 'd["error"]["code"]' 2>/dev/null)"
    if [[ $rc -ne 5 || "$is_error" != "true" || "$code" != "$want" ]]; then
      fail "$name $args: expected isError with code $want, got Inspector exit $rc, isError $is_error: $(head -c 600 "$LAST")"
      return 1
    fi
    pass "$name $(shown "$args") -> isError $want (expected)"
  fi
}

# The tools are the catalogue files under tools/ (one file per tool).
EXPECTED_TOOLS="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../tools" && python3 -c 'import glob, json; print(json.dumps(sorted(f[:-5] for f in glob.glob("*.json"))))')"
EXPECTED_COUNT="$(python3 -c "print(len($EXPECTED_TOOLS))")"

# tools/list with --strict: exit 0 means no error-severity schema finding.
strict_list() {
  local out="$WORK/list.json" err="$WORK/list.err" rc
  tp_inspector --format json --strict --method tools/list "${TARGET[@]}" >"$out" 2>"$err"
  rc=$?
  if [[ $rc -eq 6 ]]; then
    fail "tools/list --strict: schema portability errors (Inspector exit 6):"
    sed 's/^/       | /' "$err"
    return 1
  elif [[ $rc -ne 0 ]]; then
    fail "tools/list --strict: Inspector exit $rc; stderr: $(tail -c 800 "$err")"
    return 1
  fi
  pass "tools/list --strict (Inspector schema portability check: no errors)"
  local findings
  findings="$(jget "$out" 'sum(len(t["findings"]) for t in d.get("schemaFindings", []))')"
  if [[ "$findings" != "0" ]]; then
    printf '       note: %s warning-severity schema findings (not failures under --strict):\n' "$findings"
    sed 's/^/       | /' "$err"
  fi
  local names
  names="$(jget "$out" 'sorted(t["name"] for t in d["result"]["tools"])')"
  if [[ "$names" == "$EXPECTED_TOOLS" ]]; then
    pass "tools/list names the $EXPECTED_COUNT tools"
  else
    fail "tools/list: expected $EXPECTED_TOOLS, got $names"
    return 1
  fi
  local bad
  bad="$(jget "$out" '[t["name"] for t in d["result"]["tools"] if not t.get("description") or t.get("inputSchema", {}).get("type") != "object"]')"
  if [[ "$bad" == "[]" ]]; then
    pass "every tool has a description and an object inputSchema"
  else
    fail "tools without a description or an object inputSchema: $bad"
    return 1
  fi
}

# Every tool, in order, on one swarm. $1 names the swarm (unique per transport).
scenario() {
  local S="$1" A B MID O
  strict_list || return 1

  # Long liveness settings: each Inspector call starts Node (seconds on a loaded machine), and the
  # scenario must not see its agents fail over between steps.
  tool swarm_init "{\"topology\":\"mesh\",\"maxAgents\":4,\"strategy\":\"distributed\",\"swarmId\":\"$S\",\"heartbeatInterval\":600,\"messageTimeout\":3600}" || return 1
  check "swarm_init" "d['swarmId'] == '$S' and d['topology'] == 'mesh' and d['maxAgents'] == 4" || return 1
  # Each Inspector call is a new session: the owner's token travels by hand.
  O="$(jget "$LAST" 'd["ownerToken"]')"
  tool swarm_init "{\"topology\":\"ring\",\"swarmId\":\"$S\"}" conflict || return 1

  tool agent_spawn "{\"type\":\"coder\",\"name\":\"intruder\",\"swarmId\":\"$S\"}" unauthorized || return 1
  tool agent_spawn "{\"type\":\"coordinator\",\"name\":\"lead\",\"capabilities\":[\"planning\"],\"swarmId\":\"$S\",\"ownerToken\":\"$O\"}" || return 1
  A="$(jget "$LAST" 'd["agentToken"]')"
  check "agent_spawn lead" "d['name'] == 'lead' and d['agentToken'].startswith('mesh_')" || return 1
  tool agent_spawn "{\"type\":\"coder\",\"name\":\"dev\",\"swarmId\":\"$S\",\"ownerToken\":\"$O\"}" || return 1
  B="$(jget "$LAST" 'd["agentToken"]')"
  check "agent_spawn dev links to lead" "d['name'] == 'dev' and len(d['links']) == 1" || return 1

  tool daa_communication "{\"action\":\"send\",\"from\":\"lead\",\"to\":\"dev\",\"type\":\"task_assignment\",\"message\":{\"task\":\"fix the parser\"},\"agentToken\":\"$A\",\"swarmId\":\"$S\"}" || return 1
  check "send" "len(d['delivered']) == 1 and d['delivered'][0]['hops'] == 1" || return 1
  tool daa_communication "{\"action\":\"send\",\"from\":\"dev\",\"to\":\"lead\",\"message\":{\"hi\":true},\"agentToken\":\"not-the-token\",\"swarmId\":\"$S\"}" unauthorized || return 1
  tool daa_communication "{\"action\":\"receive\",\"agentId\":\"dev\",\"agentToken\":\"$B\",\"swarmId\":\"$S\"}" || return 1
  check "receive" "len(d['messages']) == 1 and d['messages'][0]['message'] == {'task': 'fix the parser'} and d['messages'][0]['type'] == 'task_assignment'" || return 1
  MID="$(jget "$LAST" 'd["messages"][0]["messageId"]')"
  tool daa_communication "{\"action\":\"ack\",\"agentId\":\"dev\",\"messageIds\":[\"$MID\"],\"agentToken\":\"$B\",\"swarmId\":\"$S\"}" || return 1
  check "ack" "d['acknowledged'] == 1" || return 1
  tool daa_communication "{\"action\":\"receive\",\"agentId\":\"dev\",\"agentToken\":\"$B\",\"swarmId\":\"$S\"}" || return 1
  check "mailbox empty after ack" "d['messages'] == []" || return 1

  local NS="ns-$S"
  tool memory_usage "{\"action\":\"store\",\"key\":\"plan:1\",\"value\":\"ship the staging database\",\"namespace\":\"$NS\"}" || return 1
  check "store" "d['entry']['version'] == 1" || return 1
  tool memory_usage "{\"action\":\"store\",\"key\":\"plan:2\",\"value\":\"lunch\",\"namespace\":\"$NS\"}" || return 1
  tool memory_usage "{\"action\":\"retrieve\",\"key\":\"plan:1\",\"namespace\":\"$NS\"}" || return 1
  check "retrieve" "d['found'] is True and d['entry']['value'] == 'ship the staging database'" || return 1
  tool memory_usage "{\"action\":\"list\",\"key\":\"plan:\",\"namespace\":\"$NS\"}" || return 1
  check "list" "d['total'] == 2 and [e['key'] for e in d['entries']] == ['plan:1', 'plan:2']" || return 1
  tool memory_usage "{\"action\":\"search\",\"query\":\"staging\",\"namespace\":\"$NS\"}" || return 1
  check "search" "[e['key'] for e in d['entries']] == ['plan:1']" || return 1
  tool memory_usage "{\"action\":\"delete\",\"key\":\"plan:2\",\"namespace\":\"$NS\"}" || return 1
  tool memory_usage "{\"action\":\"retrieve\",\"key\":\"plan:2\",\"namespace\":\"$NS\"}" || return 1
  check "retrieve after delete" "d['found'] is False" || return 1
  tool memory_usage "{\"action\":\"store\",\"key\":\"empty\",\"namespace\":\"$NS\"}" invalid_argument || return 1

  tool agent_list "{\"swarmId\":\"$S\"}" || return 1
  check "agent_list" "d['count'] == 2 and sorted(a['name'] for a in d['agents']) == ['dev', 'lead']" || return 1
  tool swarm_status "{\"swarmId\":\"$S\"}" || return 1
  check "swarm_status" "d['agents']['total'] == 2 and d['links']['total'] == 1" || return 1
  tool topology_optimize "{\"swarmId\":\"$S\"}" || return 1
  check "topology_optimize" "d['swarmId'] == '$S' and 'before' in d and 'after' in d" || return 1
  tool swarm_destroy "{\"swarmId\":\"$S\"}" unauthorized || return 1
  tool swarm_destroy "{\"swarmId\":\"$S\",\"ownerToken\":\"$O\"}" || return 1
  check "swarm_destroy" "d['agentsRemoved'] == 2" || return 1
  tool swarm_status "{\"swarmId\":\"$S\"}" not_found || return 1
}

# Legacy SSE (/sse + /message): the strict list and a short round trip.
sse_scenario() {
  local S="$1" O
  strict_list || return 1
  tool swarm_init "{\"topology\":\"star\",\"swarmId\":\"$S\",\"heartbeatInterval\":600,\"messageTimeout\":3600}" || return 1
  O="$(jget "$LAST" 'd["ownerToken"]')"
  tool agent_spawn "{\"type\":\"coordinator\",\"swarmId\":\"$S\",\"ownerToken\":\"$O\"}" || return 1
  tool swarm_status "{\"swarmId\":\"$S\"}" || return 1
  check "swarm_status over SSE" "d['agents']['total'] == 1" || return 1
  tool swarm_destroy "{\"swarmId\":\"$S\",\"ownerToken\":\"$O\"}" || return 1
}

section() {
  LABEL="$1"
  printf '\n== inspector: %s ==\n' "$1"
}

start=$SECONDS
section "stdio"
TARGET=(-- "$MESH_MCP_BIN" serve --db "$WORK/stdio.db")
scenario "inspector-stdio" || printf '  (stdio sequence stopped at the first failure)\n'

if [[ "${MESH_MCP_SKIP_HTTP:-}" == "1" ]]; then
  printf '\n== inspector: HTTP and SSE SKIPPED (MESH_MCP_SKIP_HTTP=1) ==\n'
else
  section "streamable HTTP (/mcp)"
  if tp_start_http "$WORK/http.db" "$WORK/http.log"; then
    printf '  server at %s\n' "$TP_HTTP_BASE"
    TARGET=(--transport http --server-url "$TP_HTTP_BASE/mcp")
    scenario "inspector-http" || printf '  (HTTP sequence stopped at the first failure)\n'

    section "legacy SSE (/sse + /message)"
    TARGET=(--transport sse --server-url "$TP_HTTP_BASE/sse")
    sse_scenario "inspector-sse" || printf '  (SSE sequence stopped at the first failure)\n'
    tp_stop_http
  else
    fail "could not start mesh-mcp serve --http"
  fi
fi

printf '\n'
if ((FAILED > 0)); then
  printf 'inspector failures:\n'
  printf '  - %s\n' "${FAILURES[@]}"
fi
printf 'inspector: done in %ss\n' "$((SECONDS - start))"
printf 'inspector: %d passed, %d failed\n' "$PASSED" "$FAILED"
((FAILED == 0))

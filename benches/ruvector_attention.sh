#!/usr/bin/env bash
# Install @ruvector/attention for the attention benchmark into a cache directory outside the
# repository (default ~/.cache/mesh-mcp/bench-node; RUVECTOR_NODE_DIR overrides), then run the
# benchmark, which times it through benches/ruvector_attention.mjs next to our own kernel.
#
#   benches/ruvector_attention.sh            # install if missing, then `cargo bench --bench attention`
#   benches/ruvector_attention.sh --install  # install only
set -euo pipefail
dir="${RUVECTOR_NODE_DIR:-$HOME/.cache/mesh-mcp/bench-node}"
version="${RUVECTOR_VERSION:-2.2.2}"
mkdir -p "$dir"
if [ ! -f "$dir/node_modules/@ruvector/attention/package.json" ]; then
  (cd "$dir" && { [ -f package.json ] || npm init -y >/dev/null; } && npm install --no-audit --no-fund "@ruvector/attention@$version" >&2)
fi
echo "@ruvector/attention $(node -p "require('$dir/node_modules/@ruvector/attention/package.json').version") in $dir" >&2
[ "${1:-}" = "--install" ] && exit 0
cd "$(dirname "$0")/.."
RUVECTOR_NODE_DIR="$dir" exec cargo bench --bench attention

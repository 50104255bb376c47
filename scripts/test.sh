#!/usr/bin/env bash
# Runs every Go test with the race detector. Redis-backed tests start their
# own redis-server; with AUTHZD_REQUIRE_REDIS=1 a missing redis-server fails
# them instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
exec go test -race -count=1 -timeout 12m ./...

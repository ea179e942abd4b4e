#!/usr/bin/env bash
# Runs the whole test suite: unit and integration tests against a real SoftHSM2 token, first on
# SQLite, then again on a real PostgreSQL server started here on 127.0.0.1 (a throwaway cluster
# in a temporary folder, stopped on exit). Installs what is missing first and checks the
# dependency policy (deny.toml) before building.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

# Licences, banned crates and sources (offline; the advisory check needs the RustSec database,
# see README.md "Dependency hygiene").
echo "== cargo deny check licenses bans sources"
cargo deny check licenses bans sources

echo "== build"
cargo build --quiet --all-targets

echo "== tests on SQLite"
CLOUDCA_TEST_POSTGRES= cargo nextest run --no-fail-fast

echo "== tests on PostgreSQL"
source scripts/postgres.sh
start_postgres
CLOUDCA_TEST_POSTGRES="$PG_URL" cargo nextest run --no-fail-fast

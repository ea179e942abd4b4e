#!/usr/bin/env bash
# One command to a running development CA: installs what is missing (SoftHSM2 from Debian),
# creates the instance in ./dev on first run (token, PINs, SQLite, config, CA hierarchy, TLS),
# then starts the daemon in the foreground. Ctrl-C stops it; run again to restart.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${CLOUDCA_DEV_DIR:-dev}

scripts/install-deps.sh
cargo build --release --quiet
if [ ! -f "$DIR/cloudca.toml" ]; then
  ./target/release/cloudca dev-init --dir "$DIR"
fi
echo "metrics:  http://$(sed -n 's/^metrics = "\(.*\)"/\1/p' "$DIR/cloudca.toml")/metrics"
exec ./target/release/cloudca --config "$DIR/cloudca.toml" serve

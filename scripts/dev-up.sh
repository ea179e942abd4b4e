#!/usr/bin/env bash
# One command to a running development CA: installs what is missing (SoftHSM2 from Debian),
# creates the instance in ./dev on first run (token, PINs, SQLite, config, CA hierarchy, TLS),
# then starts the daemon in the foreground and the web front beside it. Ctrl-C stops both; run
# again to restart.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${CLOUDCA_DEV_DIR:-dev}

scripts/install-deps.sh
cargo build --release --quiet
if [ ! -f "$DIR/cloudca.toml" ]; then
  ./target/release/cloudca dev-init --dir "$DIR"
fi
echo "metrics:  http://$(sed -n 's/^metrics = "\(.*\)"/\1/p' "$DIR/cloudca.toml")/metrics"
if [ -f "$DIR/web.toml" ]; then
  # The web front calls the daemon only when a page is asked for; it holds no state.
  ./target/release/cloudca --config "$DIR/web.toml" web &
  WEB=$!
  trap 'kill $WEB 2>/dev/null || true' EXIT
  echo "web front: http://$(sed -n 's/^listen = "\(.*\)"/\1/p' "$DIR/web.toml")/"
fi
./target/release/cloudca --config "$DIR/cloudca.toml" serve

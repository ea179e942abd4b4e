#!/usr/bin/env bash
# Sourced helper: start_postgres starts a throwaway PostgreSQL cluster on 127.0.0.1 (trust auth,
# loopback only) and exports PG_URL; the cluster is stopped and removed when the shell exits.
# tests/it/faults.rs starts a cluster of its own the same way (it restarts it under load, so it
# cannot share this one): keep the two in step.

start_postgres() {
  local bin port as=()
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  PG_DIR=$(mktemp -d /tmp/cloudca-pg.XXXXXX)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres "$PG_DIR"
    as=(runuser -u postgres --)
  fi
  "${as[@]}" "$bin/initdb" -D "$PG_DIR/data" -A trust -U postgres >/dev/null
  "${as[@]}" "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $PG_DIR -c fsync=on -c max_connections=300" start >/dev/null
  export PG_URL="postgres://postgres@127.0.0.1:$port/postgres"
  export PG_DIR PG_BIN="$bin" PG_AS="${as[*]:-}"
  trap stop_postgres EXIT
  echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port"
}

stop_postgres() {
  [ -n "${PG_DIR:-}" ] || return 0
  $PG_AS "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$PG_DIR"
}

#!/usr/bin/env bash
# Installs what building, running and testing cloudca needs on Debian: SoftHSM2 and pkcs11-tool,
# OpenSSL, PostgreSQL (tests run the suite against it too), Chromium and ChromeDriver (the web
# front's browser tests), pkilint and schemathesis from PyPI, cargo-nextest.
# Idempotent: installs only what is missing.
set -euo pipefail

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

need_apt=()
command -v softhsm2-util >/dev/null || need_apt+=(softhsm2)
command -v pkcs11-tool >/dev/null || need_apt+=(opensc)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v curl >/dev/null || need_apt+=(curl)
command -v wrk >/dev/null || need_apt+=(wrk)                 # benchmarks
command -v ab >/dev/null || need_apt+=(apache2-utils)        # benchmarks
command -v zbarimg >/dev/null || need_apt+=(zbar-tools)      # tests read QR codes back
command -v chromium >/dev/null || need_apt+=(chromium)       # web front tests, headless
command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
[ -n "$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null)" ] || need_apt+=(postgresql)
command -v pip3 >/dev/null || command -v pip >/dev/null || need_apt+=(python3-pip)
if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "installing Debian packages: ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! command -v lint_pkix_cert >/dev/null; then
  echo "installing pkilint"
  pip3 install -q pkilint 2>/dev/null || pip3 install -q --break-system-packages pkilint
fi

# schemathesis 4.x fuzzes the admin API from openapi/admin.json (scripts/fuzz-api.sh uses 4.x's flags).
if [[ "$(schemathesis --version 2>/dev/null || true)" != *"version 4."* ]]; then
  echo "installing schemathesis"
  pip3 install -q 'schemathesis>=4,<5' 2>/dev/null || pip3 install -q --break-system-packages 'schemathesis>=4,<5'
fi

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing cargo-nextest"
  cargo install --locked cargo-nextest >/dev/null
fi

#!/usr/bin/env bash
# Installs what building, running and testing cloudca needs on Debian: SoftHSM2 and pkcs11-tool,
# OpenSSL, PostgreSQL (tests run the suite against it too), Chromium and ChromeDriver (the web
# front's browser tests), systemd-analyze (the unit tests), pkilint and schemathesis from PyPI,
# cargo-nextest and cargo-deny.
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
command -v h2load >/dev/null || need_apt+=(nghttp2-client)      # benchmarks (OCSP, h2load --h1)
command -v zbarimg >/dev/null || need_apt+=(zbar-tools)      # tests read QR codes back
command -v chromium >/dev/null || need_apt+=(chromium)       # web front tests, headless
command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
command -v pk12util >/dev/null || need_apt+=(libnss3-tools)  # the review pages' browser test (NSS database)
[ -n "$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null)" ] || need_apt+=(postgresql)
command -v pg_dump >/dev/null || need_apt+=(postgresql-client)     # back-up tests
command -v systemd-analyze >/dev/null || need_apt+=(systemd)       # tests/it/systemd.rs (verify, security)
command -v pip3 >/dev/null || command -v pip >/dev/null || need_apt+=(python3-pip)
command -v pdfsig >/dev/null || need_apt+=(poppler-utils)    # tests/it/pades.rs: pdfsig, pdftoppm
command -v qpdf >/dev/null || need_apt+=(qpdf)               # tests/it/pades.rs: qpdf --check, --encrypt
if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "installing Debian packages: ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# The review pages' browser test (tests/it/review_pages.rs) logs in with a reviewer's client
# certificate that it puts in the test browser's own NSS database. Chromium presents one without
# a dialog only under the AutoSelectCertificateForUrls policy, read from this folder alone: only
# to https://localhost, only a certificate from a "cloudca Development Operator CA" (dev-init's).
policy=/etc/chromium/policies/managed/cloudca-tests.json
if [ ! -f "$policy" ]; then
  echo "installing the Chromium client-certificate policy for the tests ($policy)"
  $SUDO mkdir -p "$(dirname "$policy")"
  echo '{"AutoSelectCertificateForUrls": ["{\"pattern\":\"https://localhost\",\"filter\":{\"ISSUER\":{\"CN\":\"cloudca Development Operator CA\"}}}"]}' \
    | $SUDO tee "$policy" >/dev/null
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

# cargo-deny checks licences, bans and sources offline (scripts/test.sh); deny.toml is written for
# 0.20 (pinned so every machine reads it the same way), which needs rustc 1.88 or newer.
CARGO_DENY_VERSION=0.20.2
if ! cargo deny --version >/dev/null 2>&1; then
  rustc_minor="$(rustc --version | sed -E 's/^rustc 1\.([0-9]+).*/\1/')"
  if [ "$rustc_minor" -lt 88 ]; then
    echo "cargo-deny $CARGO_DENY_VERSION needs rustc 1.88 or newer (found $(rustc --version)); run rustup update" >&2
    exit 1
  fi
  echo "installing cargo-deny $CARGO_DENY_VERSION"
  cargo install --locked "cargo-deny@$CARGO_DENY_VERSION" >/dev/null
fi

# ---- pyHanko: its CSCSigner signs through /csc/v1 (tests/it/csc.rs) and `pyhanko sign validate`
# (pyhanko-cli) checks those PDFs and the PAdES ones cloudca writes (tests/it/pades.rs). Versions pinned: the test follows 0.38's CSC client.
if ! python3 -c 'import pyhanko.sign.signers.csc_signer' 2>/dev/null || ! command -v pyhanko >/dev/null; then
  echo "installing pyhanko and pyhanko-cli"
  pip3 install -q 'pyhanko==0.38.0' 'pyhanko-cli==0.6.0' 2>/dev/null \
    || pip3 install -q --break-system-packages 'pyhanko==0.38.0' 'pyhanko-cli==0.6.0'
fi
# ---- end CSC API

#!/usr/bin/env bash
# A real, short load run against a throwaway development instance, recorded the way Prometheus
# would see it: /metrics scraped every second into a file, then drawn as the key panels of
# dashboards/cloudca.json by scripts/plot-dashboard.py (Grafana is not available here).
#
#   CLOUDCA_BIN=target/release/cloudca scripts/dashboard-run.sh [docs/dashboard.png]
#
# Load (about 55 s, every loop capped in count and in time; the whole script stays under 90 s):
#   idle → OCSP POST answered from pre-signed responses → OCSP with a nonce (signed on the spot
#   by the HSM) → OCSP GET while an operator revokes certificates → idle.
# Throughout, at the same time: issuance through the admin API (org and personal, a few refused on
# purpose), cloud signing (a relying platform opens a session with `cloudca rp sign`, a holder
# enrolled once with the sandbox providers claims it and approves it with `cloudca app`), RA
# orders from the web front (created, verification step, read back) and admin traffic over mutual
# TLS (operator calls, reviewer revocations refused with 403, handshakes without a client
# certificate). CPU (the daemon's and the whole machine's) is sampled with each scrape.
# Needs: openssl, curl, ab (apache2-utils), python3 (matplotlib is pip-installed when missing).
# KEEP_RUN=1 keeps the run folder (instance, scrapes, ab and client logs).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${CLOUDCA_BIN:-$ROOT/target/release/cloudca}
OUT=${1:-$ROOT/docs/dashboard.png}
# The output path is resolved now, against the caller's folder, before anything changes it.
case $OUT in /*) ;; *) OUT=$PWD/$OUT ;; esac

# Phase lengths in seconds. Their sum (plus about 10 s of setup and plotting) is the budget.
IDLE=5 PRESIGNED=20 NONCE=15 GET=10
CONCURRENCY=8
ISSUE_MAX=400           # cap on issuances (the time limit usually ends the loop first)
SIGN_MAX=300            # cap on signing sessions (likewise)
RA_MAX=300              # cap on RA orders (likewise)
PIN=246810
HARD_LIMIT=75           # latest end of load (s after start): leaves the last idle, shutdown and plot under 90 s

[[ -x $BIN ]] || { echo "cloudca binary not found: $BIN (set CLOUDCA_BIN)" >&2; exit 1; }
for tool in openssl curl ab python3; do
  command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 1; }
done

RUN=$(mktemp -d /tmp/cloudca-dashrun.XXXXXX)
# The EXIT trap can fire inside a redirected command (ab's output goes to a file); fd 3 keeps the
# script's own stderr for what cleanup has to say.
exec 3>&2
DAEMON_PID=
BG_PIDS=()
FG_PID=
OK=0

cleanup() {
  local pid
  # Load generators first, so none of them talks to a daemon that is going away.
  for pid in $FG_PID "${BG_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [[ -n $DAEMON_PID ]] && kill -0 "$DAEMON_PID" 2>/dev/null; then
    kill -TERM "$DAEMON_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$DAEMON_PID" 2>/dev/null || true
  fi
  wait 2>/dev/null || true
  if [[ $OK == 1 && ${KEEP_RUN:-0} != 1 ]]; then
    rm -rf "$RUN"
  else
    echo "run folder kept: $RUN" >&3
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }
# Runs a long command as a child we wait for: bash runs a trap only once a foreground command has
# finished, but interrupts `wait` at once, so a TERM stops the run within a second, not after ab.
foreground() { "$@" & FG_PID=$!; wait "$FG_PID"; }
# Seconds since the script started, for the loops' time caps.
elapsed() { echo $SECONDS; }
phase() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$RUN/phases.tsv"; }
# Never let a proxy from the environment see these requests: everything is on 127.0.0.1.
export no_proxy='*' NO_PROXY='*'
CURL=(curl --noproxy '*' -s --max-time 5)

# The binary may be rebuilt under us by someone else's cargo build: run a private copy.
cp "$BIN" "$RUN/cloudca"
CA=$RUN/cloudca
"$CA" dev-init --dir "$RUN/ca" >"$RUN/dev-init.log" 2>&1
CONF=$RUN/ca/cloudca.toml
# One holder approves every signing session of the run, all from 127.0.0.1: the PIN-guess limits
# (10 a minute per credential, 60 per address, right or wrong) would make this a picture of the
# rate limiter. This throwaway instance raises those two; every other limit stays as shipped.
if grep -q '^\[limits\]' "$CONF"; then
  echo "dev-init now writes [limits]: merge the raised PIN-guess limits into it" >&2; exit 1
fi
printf '\n[limits]\n%s\n%s\n' 'attempts_per_credential = { count = 100000, seconds = 60 }' \
  'attempts_per_ip = { count = 100000, seconds = 60 }' >>"$CONF"

# dev-init picked free ports; read them back from the config it wrote.
read -r PUBLIC ADMIN METRICS APIPORT < <(python3 - "$CONF" <<'EOF'
import sys, tomllib
l = tomllib.load(open(sys.argv[1], "rb"))["listeners"]
print(*(l[k].rsplit(":", 1)[1] for k in ("public", "admin", "metrics", "api")))
EOF
)
PUB=http://127.0.0.1:$PUBLIC
ADM=https://127.0.0.1:$ADMIN
MET=http://127.0.0.1:$METRICS
API=https://127.0.0.1:$APIPORT
TLS=$RUN/ca/tls
as_role() { "${CURL[@]}" --cacert "$TLS/operator-ca.pem" --cert "$TLS/clients/$1.pem" --key "$TLS/clients/$1.key" "${@:2}"; }

# Subjects carry valid check digits (GB 32100 credit code, GB 11643 resident id) so the policy
# accepts them; "bad" subjects break the credit code's check character so that refusals show too.
mkdir -p "$RUN/csr" "$RUN/certs"
make_csr() {  # name: org<N>, personal<N> or bad<N>
  local subject
  case $1 in
    org*) subject="/C=CN/O=Example Ltd ${1#org}/CN=Example ${1#org}/serialNumber=91350100M000100Y43" ;;
    personal*) subject="/C=CN/CN=Person ${1#personal}/serialNumber=11010519491231002X" ;;
    bad*) subject="/C=CN/O=Example Ltd/CN=Bad ${1#bad}/serialNumber=91350100M000100Y44" ;;
  esac
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -utf8 -subj "$subject" \
    -keyout "$RUN/csr/$1.key" -out "$RUN/csr/$1.csr" 2>/dev/null
}

RUST_LOG=${RUST_LOG:-info} "$CA" --config "$CONF" serve >"$RUN/daemon.log" 2>&1 &
DAEMON_PID=$!
for _ in $(seq 1 150); do
  "${CURL[@]}" -f "$MET/ready" >/dev/null 2>&1 && break
  kill -0 "$DAEMON_PID" 2>/dev/null || { echo "daemon exited; log:" >&2; cat "$RUN/daemon.log" >&2; exit 1; }
  sleep 0.1
done
"${CURL[@]}" -f "$MET/ready" >/dev/null || { echo "daemon not ready after 15 s" >&2; exit 1; }

# CPU as /proc counts it, in clock ticks: "time busy total daemon" (machine busy and total over
# all cores, and the daemon's user + system time). The plot turns differences into cores in use;
# load generators and anything else on the machine show in the machine's share.
CLK_TCK=$(getconf CLK_TCK)
cpu_sample() {
  local cpu user nice system idle iowait irq softirq steal rest stat
  read -r cpu user nice system idle iowait irq softirq steal rest </proc/stat
  stat=$(<"/proc/$DAEMON_PID/stat") || return 0
  # Fields after the command name (which ends with ") "): state is the first, utime the 12th.
  read -r -a stat <<<"${stat##*) }"
  printf '%s %d %d %d\n' "$1" $((user + nice + system + irq + softirq + steal)) \
    $((user + nice + system + idle + iowait + irq + softirq + steal)) $((stat[11] + stat[12])) >>"$RUN/cpu.tsv"
}

# One scrape per second on a fixed cadence (sleeping to the next tick, not 1 s after the last
# scrape) so that rate() windows hold the same number of samples all run long. Each scrape is
# stamped with its start time, as Prometheus does.
scraper() {
  local start i t body
  start=$(date +%s%N)
  for ((i = 0; i < 150; i++)); do
    [[ -e $RUN/stop-scraping ]] && break
    t=$(now)
    cpu_sample "$t"
    if body=$("${CURL[@]}" --max-time 0.9 "$MET/metrics"); then
      printf '# SCRAPE %s\n%s\n' "$t" "$body" >>"$RUN/scrape.prom"
    fi
    local wait_ns=$((start + (i + 1) * 1000000000 - $(date +%s%N)))
    ((wait_ns > 0)) && sleep "$(printf '%d.%09d' $((wait_ns / 1000000000)) $((wait_ns % 1000000000)))"
  done
}
scraper &
BG_PIDS+=($!)

issue() {  # name profile; appends "start end profile rc" to the log
  local t0 t1 rc=0
  # The CSR is made outside the timed span: the log measures cloudca, not openssl keygen.
  make_csr "$1"
  python3 -c 'import json,sys; print(json.dumps({"csr": open(sys.argv[1]).read(), "profile": sys.argv[2]}))' \
    "$RUN/csr/$1.csr" "$2" >"$RUN/csr/$1.json"
  t0=$(now)
  # Through the admin API (as an operator), so the daemon's own issuance metrics see it.
  as_role operator -f -o "$RUN/certs/$1.json" -X POST -H 'Content-Type: application/json' \
    --data-binary @"$RUN/csr/$1.json" "$ADM/v1/certificates" >>"$RUN/issue.out" 2>&1 || rc=$?
  t1=$(now)
  ((rc == 0)) && python3 -c 'import json,sys; open(sys.argv[2], "w").write(json.load(open(sys.argv[1]))["pem"])' \
    "$RUN/certs/$1.json" "$RUN/certs/$1.pem"
  printf '%s %s %s %s\n' "$t0" "$t1" "$2" "$rc" >>"$RUN/issuance.log"
  return $rc
}
# The certificates the OCSP phases ask about, issued before the load so that their responses are
# pre-signed by the time they are queried. They must exist (each gets three tries).
for name in org1 personal1; do
  for _ in 1 2 3; do
    if issue "$name" "${name%1}"; then break; fi
  done
  [[ -s $RUN/certs/$name.pem ]] || { echo "could not issue $name; see $RUN/issue.out" >&2; exit 1; }
done
curl --noproxy '*' -sf --max-time 5 "$PUB/ca/org.crt" | openssl x509 -inform der -out "$RUN/org-ca.pem"
curl --noproxy '*' -sf --max-time 5 "$PUB/ca/personal.crt" | openssl x509 -inform der -out "$RUN/personal-ca.pem"
openssl ocsp -issuer "$RUN/org-ca.pem" -cert "$RUN/certs/org1.pem" -no_nonce -reqout "$RUN/ocsp-presigned.der" >/dev/null
openssl ocsp -issuer "$RUN/org-ca.pem" -cert "$RUN/certs/org1.pem" -reqout "$RUN/ocsp-nonce.der" >/dev/null
openssl ocsp -issuer "$RUN/personal-ca.pem" -cert "$RUN/certs/personal1.pem" -no_nonce \
  -reqout "$RUN/ocsp-personal.der" >/dev/null
# RFC 6960 GET: base64 of the DER request, URL-encoded ('+', '/', '=' are not path-safe).
OCSP_GET=$(base64 -w0 "$RUN/ocsp-personal.der" | sed 's/+/%2B/g; s|/|%2F|g; s/=/%3D/g')

# The holder of the signing loop, enrolled once as README "Signing from a phone" shows: an
# operator's approval, an SMS login (code from the sandbox outbox), the sandbox face check and
# the first PIN (key generated in the HSM, certificate issued).
HOLDER_PHONE=+8613800138000
APP=("$CA" app --state "$RUN/app.json")
json_field() { python3 -c 'import json,sys; v=json.load(sys.stdin)
for k in sys.argv[1:]: v=v[int(k) if k.isdigit() else k]
print(v)' "$@"; }
enrol_holder() {
  "$CA" --config "$CONF" approval create --profile personal --phone "$HOLDER_PHONE" \
    --subject "/C=CN/CN=Holder/serialNumber=11010519491231002X" &&
    "${APP[@]}" login --api "$API" --ca "$TLS/operator-ca.pem" --phone "$HOLDER_PHONE" \
      --outbox "$RUN/ca/data/sms-outbox.jsonl" &&
    APPROVAL=$("${APP[@]}" credentials | json_field approvals 0 approval_id) &&
    CREDENTIAL=$(echo "$PIN" | "${APP[@]}" enroll --approval "$APPROVAL" | json_field id)
}
enrol_holder >"$RUN/enrol.log" 2>&1 || { echo "holder enrolment failed; see $RUN/enrol.log" >&2; cat "$RUN/enrol.log" >&2; exit 1; }

LOAD_END=$(( $(elapsed) + IDLE + PRESIGNED + NONCE + GET ))
((LOAD_END <= HARD_LIMIT)) || { echo "setup too slow ($(elapsed) s): load would overrun the budget" >&2; exit 1; }

# Issuance one request at a time: org and personal alternately, every tenth one refused.
issuer_loop() {
  local i
  for ((i = 2; i <= ISSUE_MAX; i++)); do
    (($(elapsed) < LOAD_END - GET - IDLE)) || break
    if ((i % 10 == 0)); then
      issue "bad$i" org || true
    elif ((i % 2)); then
      issue "org$i" org || true
    else
      issue "personal$i" personal || true
    fi
    # One request at a time, with a breather: on 2 cores an unpaced loop takes a whole core
    # from the OCSP load it runs next to.
    sleep 0.05
  done
}

# Back-office traffic over mutual TLS: mostly allowed calls, some refused by role (403, counted
# as denials), some handshakes without a client certificate (counted as TLS failures).
admin_loop() {
  local i serial
  serial=$(openssl x509 -in "$RUN/certs/personal1.pem" -noout -serial | cut -d= -f2)
  for ((i = 1; i <= 400; i++)); do
    (($(elapsed) < LOAD_END)) || break
    as_role operator -o /dev/null "$ADM/v1/whoami" || true
    if ((i % 4 == 0)); then
      as_role reviewer -o /dev/null -X POST -H 'Content-Type: application/json' \
        -d '{"reason":"superseded"}' "$ADM/v1/certificates/$serial/revoke" || true
    fi
    if ((i % 8 == 0)); then
      "${CURL[@]}" --cacert "$TLS/operator-ca.pem" -o /dev/null "$ADM/v1/whoami" || true
    fi
    ((i % 20 == 0)) && { as_role auditor -o /dev/null "$ADM/v1/hsm" || true; }
    sleep 0.2
  done
}

# Cloud signing one session at a time, with the reference clients: `rp sign` opens a session for
# a small file and writes the QR payload of the second; `app claim` scans it and `app approve`
# signs with the PIN; `rp sign` gets the signature and checks it against the root. Appends
# "open claimed approved done rc" (unix times) to signing.log: the approval's latency is
# approved - claimed (the app's process, TLS, PIN check, HSM signature).
sign_once() {  # n
  local dir=$RUN/sign/$1 rp t0 t1 t2 rc=0 session
  mkdir -p "$dir"
  echo "tender $1: our bid" >"$dir/bid.txt"
  t0=$(now)
  "$CA" rp sign --api "$API" --ca "$TLS/operator-ca.pem" --cert "$TLS/clients/relying-platform.pem" \
    --key "$TLS/clients/relying-platform.key" --root "$RUN/ca/data/ca/root.pem" --file "$dir/bid.txt" \
    --out "$dir/bid.sig" --payload-file "$dir/payload.txt" --timeout 10 >"$dir/rp.out" 2>&1 &
  rp=$!
  for _ in $(seq 1 100); do [[ -s $dir/payload.txt ]] && break; sleep 0.02; done
  session=$("${APP[@]}" claim --payload "$(cat "$dir/payload.txt" 2>/dev/null)" 2>"$dir/claim.err" |
    sed -n 's/.*"session_id": *"\([^"]*\)".*/\1/p')
  if [[ -n $session ]]; then
    t1=$(now)
    echo "$PIN" | "${APP[@]}" approve --session "$session" --credential "$CREDENTIAL" >"$dir/approve.out" 2>&1 || rc=$?
    t2=$(now)
  else
    rc=2 t1=$(now) t2=$t1
  fi
  # A session that was not approved ends at the platform's timeout; do not wait for that.
  ((rc == 0)) || kill "$rp" 2>/dev/null || true
  wait "$rp" || ((rc)) || rc=3
  printf '%s %s %s %s %s\n' "$t0" "$t1" "$t2" "$(now)" "$rc" >>"$RUN/signing.log"
}
signer_loop() {
  local i
  for ((i = 1; i <= SIGN_MAX; i++)); do
    (($(elapsed) < LOAD_END)) || break
    sign_once "$i"
  done
}

# The web front's RA traffic: each order is created for a different browser (its address in
# x-forwarded-for, as the web front forwards it, so the per-address order limit applies to each
# browser as in production), takes the verification step and is read back. Appends
# "start end route status" per request to ra.log.
ra_call() {  # route-name method path token body
  local t0 status
  t0=$(now)
  status=$(as_role web-front -o "$RUN/ra.out" -w '%{http_code}' -X "$2" -H "x-forwarded-for: $RA_IP" \
    ${4:+-H "x-order-token: $4"} ${5:+-H 'Content-Type: application/json' -d "$5"} "$ADM$3") || status=000
  printf '%s %s %s %s\n' "$t0" "$(now)" "$1" "$status" >>"$RUN/ra.log"
  [[ $status == 2* ]]
}
ra_loop() {
  local i id token
  for ((i = 1; i <= RA_MAX; i++)); do
    (($(elapsed) < LOAD_END)) || break
    RA_IP=10.0.$((i / 250)).$((i % 250 + 1))
    ra_call create POST /v1/ra/orders "" '{"channel":"default","flow":"org-new"}' || { sleep 0.2; continue; }
    read -r id token < <(python3 -c 'import json,sys; v=json.load(sys.stdin); print(v["order"]["id"], v["token"])' \
      <"$RUN/ra.out")
    ra_call verification POST "/v1/ra/orders/$id/steps/verification" "$token" \
      '{"method":"phone","accept_terms":true}' || true
    ra_call view GET "/v1/ra/orders/$id" "$token" || true
    sleep 0.1
  done
}

ab_phase() {  # name seconds concurrency ab-args...
  local name=$1 secs=$2 conc=$3 t0
  shift 3
  t0=$(now)
  # -n only caps the count; -t ends it. -s bounds a stuck request; timeout bounds ab itself.
  foreground timeout $((secs + 10)) ab -q -t "$secs" -n 1000000 -c "$conc" -s 5 -g "$RUN/ab-$name.tsv" "$@" \
    >"$RUN/ab-$name.txt" 2>&1 || echo "ab $name exited with $?" >&2
  phase "$name" "$t0" "$(now)"
}

# Other work on the machine skews every number here; the picture says how busy it was.
LOADAVG_BEFORE=$(cut -d' ' -f1 /proc/loadavg)
echo "load: ${IDLE}s idle, ${PRESIGNED}s pre-signed OCSP, ${NONCE}s nonce OCSP, ${GET}s GET + revocations, ${IDLE}s idle;"
echo "      issuance, cloud signing, RA orders and admin traffic alongside"
t=$(now); foreground sleep "$IDLE"; phase idle "$t" "$(now)"
issuer_loop &
BG_PIDS+=($!)
admin_loop &
BG_PIDS+=($!)
signer_loop &
BG_PIDS+=($!)
ra_loop &
BG_PIDS+=($!)
ab_phase "ocsp-presigned" "$PRESIGNED" "$CONCURRENCY" -p "$RUN/ocsp-presigned.der" -T application/ocsp-request "$PUB/ocsp/org"
# The same nonce every time is fine for load: a response carrying a nonce is never cached, so
# each request is signed by the HSM (through the org CA's delegated responder key).
ab_phase "ocsp-nonce" "$NONCE" "$CONCURRENCY" -p "$RUN/ocsp-nonce.der" -T application/ocsp-request "$PUB/ocsp/org"

# Revocations during the GET phase: each re-signs the certificate's OCSP response and marks the
# CRL for rebuild, so CRL and HSM activity show up on the timeline.
revoker() {
  local i serial
  for i in $(seq 3 2 41); do
    (($(elapsed) < LOAD_END)) || break
    [[ -f $RUN/certs/org$i.pem ]] || continue
    serial=$(openssl x509 -in "$RUN/certs/org$i.pem" -noout -serial | cut -d= -f2)
    as_role operator -o /dev/null -X POST -H 'Content-Type: application/json' \
      -d '{"reason":"superseded"}' "$ADM/v1/certificates/$serial/revoke" || true
    "${CURL[@]}" -o /dev/null "$PUB/crl/org.crl" || true
    sleep 0.3
  done
}
revoker &
BG_PIDS+=($!)
ab_phase "ocsp-get" "$GET" 4 "$PUB/ocsp/personal/$OCSP_GET"
wait "${BG_PIDS[@]:1}" 2>/dev/null || true
t=$(now); foreground sleep "$IDLE"; phase idle "$t" "$(now)"

touch "$RUN/stop-scraping"
wait "${BG_PIDS[0]}" 2>/dev/null || true
kill -TERM "$DAEMON_PID"
for _ in $(seq 1 50); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
echo "load done at $(elapsed) s; $(grep -c '^# SCRAPE' "$RUN/scrape.prom") scrapes"

if ! python3 -c 'import matplotlib' 2>/dev/null; then
  pip3 install -q matplotlib 2>/dev/null || pip3 install -q --break-system-packages matplotlib
fi
mkdir -p "$(dirname "$OUT")"
python3 "$ROOT/scripts/plot-dashboard.py" "$RUN/scrape.prom" --phases "$RUN/phases.tsv" \
  --ab "$RUN"/ab-*.tsv --issuance-log "$RUN/issuance.log" --signing-log "$RUN/signing.log" \
  --ra-log "$RUN/ra.log" --cpu "$RUN/cpu.tsv" --clk-tck "$CLK_TCK" --out "$OUT" \
  --context "load average before/after: $LOADAVG_BEFORE/$(cut -d' ' -f1 /proc/loadavg)"
OK=1
echo "total $(elapsed) s"

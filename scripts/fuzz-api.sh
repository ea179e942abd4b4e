#!/usr/bin/env bash
# Fuzzes the mutual-TLS admin API with schemathesis (PyPI; scripts/install-deps.sh installs 4.x)
# from an OpenAPI 3.x document, and fails when the daemon answers any request with a 5xx.
#
#   scripts/fuzz-api.sh SPEC BASE_URL CERT KEY CA [MAX_EXAMPLES] [SECONDS]
#
#   SPEC          OpenAPI document (JSON or YAML file). Its `servers` entry is ignored: BASE_URL wins.
#   BASE_URL      https://127.0.0.1:PORT (loopback only: 127.0.0.0/8, localhost or [::1])
#   CERT, KEY     client certificate and its unencrypted key (PEM), e.g. dev/tls/clients/operator.*
#   CA            CA bundle that verifies the server's certificate
#   MAX_EXAMPLES  generated test cases per operation in the fuzzing phase (default 30)
#   SECONDS       hard time limit for the whole run (default 120)
#
# Exit status: 0 no failing check; 1 schemathesis found failures or errors (each printed with
# the request that caused it); 2 bad arguments or schemathesis missing; 124 the time limit was
# hit (the run is incomplete; what it found until then is printed).
#
# Environment (all optional):
#   FUZZ_CHECKS   checks to run, comma-separated (default: not_a_server_error). E.g.
#                 not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance
#                 also holds the daemon to the document; `all` adds schemathesis' other checks.
#   FUZZ_SEED     seed, to replay a run (every run prints its seed).
#   FUZZ_WORKERS  concurrent workers (default 1: deterministic for a seed, gentle on a 2-core box).
#   FUZZ_WORKDIR  where schemathesis' state and reports go (default: a new temp dir, removed
#                 when the run passes, kept and printed when it does not).
#
# The run mutates the instance it targets (it revokes the certificates it finds): point it only
# at a throwaway instance such as one from `cloudca dev-init`.
set -euo pipefail

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ "$#" -ge 5 ] && [ "$#" -le 7 ] || usage

abspath() { case "$1" in /*) printf '%s\n' "$1" ;; *) printf '%s/%s\n' "$PWD" "$1" ;; esac; }
SPEC=$(abspath "$1"); BASE_URL=${2%/}; CERT=$(abspath "$3"); KEY=$(abspath "$4"); CA=$(abspath "$5")
MAX_EXAMPLES=${6:-30}; LIMIT=${7:-120}

for f in "$SPEC" "$CERT" "$KEY" "$CA"; do
  [ -r "$f" ] || { echo "fuzz-api: cannot read $f" >&2; exit 2; }
done
[[ "$MAX_EXAMPLES" =~ ^[1-9][0-9]*$ ]] || { echo "fuzz-api: MAX_EXAMPLES must be a positive integer" >&2; exit 2; }
[[ "$LIMIT" =~ ^[1-9][0-9]*$ ]] || { echo "fuzz-api: SECONDS must be a positive integer" >&2; exit 2; }
# Traffic goes to this machine only: refuse any other host.
if ! [[ "$BASE_URL" =~ ^https://(127\.[0-9]+\.[0-9]+\.[0-9]+|localhost|\[::1\]):[0-9]+(/.*)?$ ]]; then
  echo "fuzz-api: BASE_URL must be https://127.x.x.x:PORT, https://localhost:PORT or https://[::1]:PORT (got $BASE_URL)" >&2
  exit 2
fi

# schemathesis 4.x (the flags below are 4.x's; 3.x spelled several of them differently).
ST=$(command -v schemathesis || true)
if [ -z "$ST" ] || ! ST_VERSION=$("$ST" --version 2>/dev/null | awk '{print $NF}'); then
  echo "fuzz-api: schemathesis not found: run scripts/install-deps.sh" >&2; exit 2
fi
case "$ST_VERSION" in
  4.*) ;;
  *) echo "fuzz-api: schemathesis $ST_VERSION is not 4.x: run scripts/install-deps.sh" >&2; exit 2 ;;
esac

if [ -n "${FUZZ_WORKDIR:-}" ]; then
  WORK=$(abspath "$FUZZ_WORKDIR"); mkdir -p "$WORK"; KEEP=1
else
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/cloudca-fuzz.XXXXXX"); KEEP=0
fi
mkdir -p "$WORK/reports" "$WORK/hypothesis"

# No proxies (requests would honour them), no stray hooks or config, no colour, no prompts.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY SCHEMATHESIS_HOOKS
export NO_PROXY='*' no_proxy='*'
export NO_COLOR=1 TERM=dumb COLUMNS=120 PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
# Hypothesis' and schemathesis' own state (.hypothesis/, .schemathesis/) go to the work dir:
# schemathesis runs from there, which also keeps it from picking up a schemathesis.toml.
export HYPOTHESIS_STORAGE_DIRECTORY="$WORK/hypothesis"

cmd=("$ST" --no-color run "$SPEC"
  --url "$BASE_URL"
  --request-cert "$CERT" --request-cert-key "$KEY" --tls-verify "$CA"
  --checks "${FUZZ_CHECKS:-not_a_server_error}"
  --max-examples "$MAX_EXAMPLES"
  --workers "${FUZZ_WORKERS:-1}"
  --request-timeout 10 --max-redirects 0
  --generation-database none
  --report ndjson --report-ndjson-path "$WORK/reports/events.ndjson" --report-dir "$WORK/reports")
[ -z "${FUZZ_SEED:-}" ] || cmd+=(--seed "$FUZZ_SEED")

echo "fuzz-api: schemathesis $ST_VERSION, $MAX_EXAMPLES examples/operation, ${LIMIT}s limit, checks ${FUZZ_CHECKS:-not_a_server_error}"
echo "fuzz-api: ${cmd[*]}"
start=$(date +%s)
rc=0
# SIGINT first: schemathesis stops cleanly and still prints what it found; KILL 15 s later.
(cd "$WORK" && timeout -k 15 -s INT "$LIMIT" "${cmd[@]}" </dev/null >"$WORK/output.txt" 2>&1) || rc=$?
elapsed=$(( $(date +%s) - start ))

# Per operation: how many requests got which status; every 5xx, failed check or request that got
# no response (connection dropped: schemathesis reports it as a network error) with its request.
summarize() {
  python3 - "$WORK/reports/events.ndjson" <<'PY' || true
import base64, collections, json, sys
statuses = collections.defaultdict(collections.Counter)
failures = []
try:
    lines = open(sys.argv[1], encoding="utf-8")
except OSError:
    sys.exit(0)
def body(req):
    b = req.get("body")
    if not b:
        return ""
    if isinstance(b, dict) and "$base64" in b:
        raw = base64.b64decode(b["$base64"])
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return "base64:" + b["$base64"]
    return str(b)
for line in lines:
    try:
        event = json.loads(line)
    except ValueError:
        continue
    finished = event.get("ScenarioFinished")
    if not finished:
        continue
    rec = finished.get("recorder") or {}
    label = rec.get("label", "?")
    checks = rec.get("checks") or {}
    for case_id, it in (rec.get("interactions") or {}).items():
        resp = it.get("response")
        code = resp.get("status_code") if resp else "no response"
        statuses[label][code] += 1
        failed = [c["name"] for c in checks.get(case_id, []) if c.get("status") == "failure"]
        if not resp or code >= 500 or failed:
            req = it["request"]
            failures.append((label, code, failed, req["method"], req["uri"], req.get("headers") or {}, body(req)))
print("status codes per operation:")
for label in sorted(statuses):
    codes = ", ".join(f"{k}x{v}" for k, v in sorted(statuses[label].items(), key=lambda kv: str(kv[0])))
    print(f"  {label}: {codes}")
if failures:
    unique = {}
    for f in failures:
        unique.setdefault((f[3], f[4], f[6], f[1]), f)
    print(f"failing requests: {len(unique)} distinct (add --cacert CA --cert CERT --key KEY to replay with curl):")
    for label, code, failed, method, uri, headers, b in list(unique.values())[:15]:
        hdrs = "".join(f" -H '{k}: {v[0] if isinstance(v, list) else v}'" for k, v in headers.items())
        shown = b if len(b) <= 300 else b[:300] + f"...({len(b)} chars)"
        data = f" --data-raw {json.dumps(shown)}" if b else ""
        print(f"  {code} [{label}]{' ' + ', '.join(failed) if failed else ''}: curl -X {method}{hdrs}{data} '{uri}'")
    if len(unique) > 15:
        print(f"  ... {len(unique) - 15} more in {sys.argv[1]}")
PY
}

if [ "$rc" -eq 0 ]; then
  grep -E '^ *([0-9]+ generated|Seed:)' "$WORK/output.txt" | sed 's/^ */fuzz-api: /' || true
  summarize
  echo "fuzz-api: PASS in ${elapsed}s: no 5xx, no failing check"
  [ "$KEEP" -eq 1 ] || rm -rf "$WORK"
  exit 0
fi

# Failure: schemathesis' own report from its first section rule on (errors, failures with
# reproducing curl commands, warnings, summary), then the per-request digest.
awk 'f || /^=+ [A-Z]/ { f = 1; print }' "$WORK/output.txt" | head -n 400 || true
grep -qE '^=+ [A-Z]' "$WORK/output.txt" || tail -n 60 "$WORK/output.txt" || true
summarize
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
  echo "fuzz-api: INCOMPLETE: stopped at the ${LIMIT}s limit (state and reports in $WORK)"
  exit 124
fi
echo "fuzz-api: FAIL in ${elapsed}s (schemathesis exit $rc; state and reports in $WORK)"
exit 1

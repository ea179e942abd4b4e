#!/usr/bin/env bash
# The long, coverage-guided fuzz run: builds the libFuzzer targets in fuzz/ on the STABLE
# toolchain (the SanitizerCoverage flags cargo-fuzz passes, without its nightly-only -Z flags,
# so no AddressSanitizer) and runs each target in turn for SECONDS (default 300), seeded from
# fuzz/corpus/<target> plus the working corpus of earlier runs (fuzz/target/corpus/<target>).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     e.g. scripts/fuzz.sh 60 csr ocsp_get
#
# A crash, a timeout (an input over 10 s) or an out-of-memory (over 2 GiB, or one allocation
# over that) is written to fuzz/artifacts/<target>/ and makes the script fail. Logs are in
# fuzz/target/logs/; the summary table is what docs/fuzzing.md records. Needs a C++ compiler
# (libfuzzer-sys builds libFuzzer). NICE (default 19) sets the priority; MAX_LEN (default
# 8192) the longest input tried.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${1:-300}"
shift || true
all=$(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^cloudca-fuzz$')
targets="${*:-$all}"
host=$(rustc -vV | sed -n 's/^host: //p')
nice_level="${NICE:-19}"

command -v c++ >/dev/null || { echo "fuzz.sh: a C++ compiler is needed (apt-get install g++)" >&2; exit 69; }

# What cargo fuzz build passes, minus -Zsanitizer (nightly only). --target keeps these flags
# off build scripts and proc macros.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
echo "== build (stable, SanitizerCoverage, target/$host)"
nice -n "$nice_level" cargo build --release --bins --target "$host"

mkdir -p target/logs
failed=0
summary=()
for t in $targets; do
    echo "== $t: ${seconds}s"
    mkdir -p "target/corpus/$t" "artifacts/$t"
    log="target/logs/$t.log"
    started=$(date +%s)
    set +e
    nice -n "$nice_level" "target/$host/release/$t" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len="${MAX_LEN:-8192}" \
        -print_final_stats=1 -artifact_prefix="artifacts/$t/" \
        "target/corpus/$t" "corpus/$t" >"$log" 2>&1
    status=$?
    set -e
    took=$(($(date +%s) - started))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    cov=$(echo "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
    ft=$(echo "$last" | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
    units=$(find "target/corpus/$t" -type f | wc -l)
    artifacts=$(find "artifacts/$t" -type f | wc -l)
    summary+=("$(printf '%-16s %6ss %12s execs %8s/s  cov %6s  ft %7s  corpus %6s  artifacts %s  exit %s' \
        "$t" "$took" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$units" "$artifacts" "$status")")
    if [ "$status" -ne 0 ] || [ "$artifacts" -ne 0 ]; then
        failed=1
        grep -E 'ERROR|panicked|Test unit written|SUMMARY' "$log" | head -20 || true
    fi
done

echo "== summary ($(date -u +%Y-%m-%dT%H:%MZ), ${seconds}s per target)"
printf '%s\n' "${summary[@]}"
exit "$failed"

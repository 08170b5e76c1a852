#!/usr/bin/env bash
# Builds the fuzz targets with the stable toolchain and runs each for a
# fixed time over seeds made from the capture corpus.
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Targets: decode capture_file table_ops rule_file (default: all). Seeds are
# built from ${FLOWMON_CORPUS:-../shared/corpus} into fuzz/seeds/ at run
# time; the growing corpus is kept in fuzz/corpus/TARGET/ and any crashing
# input lands in fuzz/artifacts/TARGET/. Exits non-zero if a target crashed.
#
# No nightly and no cargo-fuzz: libfuzzer-sys links libFuzzer (built from
# its C++ sources by g++), and the coverage instrumentation libFuzzer needs
# comes from stable codegen flags: LLVM's SanitizerCoverage pass
# (-C passes=sancov-module) with inline 8-bit counters, a PC table and
# comparison tracing, the same options cargo-fuzz passes. Without a
# sanitizer, overflow checks and debug assertions catch arithmetic bugs;
# memory safety comes from the crates forbidding `unsafe`.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(decode capture_file table_ops rule_file)

# The corpus: $FLOWMON_CORPUS (absolute, or relative to the repository
# root, as the tests take it), else ../shared/corpus beside the repository.
corpus_dir=${FLOWMON_CORPUS:-../shared/corpus}
case $corpus_dir in /*) ;; *) corpus_dir=../$corpus_dir ;; esac
if [ ! -d "$corpus_dir/pcaps" ]; then
    echo "fuzz: no capture corpus at $corpus_dir/pcaps (set FLOWMON_CORPUS)" >&2
    exit 2
fi
corpus_dir=$(realpath "$corpus_dir")
host=$(rustc -vV | sed -n 's/^host: //p')

# --target keeps RUSTFLAGS off build scripts and proc macros.
RUSTFLAGS="-C passes=sancov-module \
 -C llvm-args=-sanitizer-coverage-level=4 \
 -C llvm-args=-sanitizer-coverage-inline-8bit-counters \
 -C llvm-args=-sanitizer-coverage-pc-table \
 -C llvm-args=-sanitizer-coverage-trace-compares \
 --cfg fuzzing" \
    cargo build --release --locked --target "$host" --bins

rm -rf seeds
(cd .. && cargo run --quiet --locked -p flowlib --example make_fuzz_seeds -- "$corpus_dir" fuzz/seeds)

max_len() {
    case $1 in
        capture_file) echo 65537 ;;
        rule_file) echo 16384 ;;
        *) echo 4096 ;;
    esac
}

failed=()
mkdir -p logs
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    echo "fuzz: $t for ${secs}s"
    set +e
    "target/$host/release/$t" "corpus/$t" "seeds/$t" \
        -max_total_time="$secs" -max_len="$(max_len "$t")" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="artifacts/$t/" -print_final_stats=1 >"logs/$t.log" 2>&1
    rc=$?
    set -e
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' "logs/$t.log" | sed "s/^/  $t /" || true
    if [ $rc -ne 0 ]; then
        echo "fuzz: $t FAILED (exit $rc); input in fuzz/artifacts/$t/, log fuzz/logs/$t.log:" >&2
        grep -E 'panicked|ERROR|SUMMARY|Test unit written' "logs/$t.log" >&2 || tail -20 "logs/$t.log" >&2
        failed+=("$t")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: crashes in ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: no crash in ${targets[*]} (${secs}s each)"

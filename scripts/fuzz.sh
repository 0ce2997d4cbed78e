#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time and fails on a crash.
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
#   SECONDS  time per target (default 60); the targets run one after another.
#   TARGET   only these targets (default: every one `cargo fuzz list` names).
#
# Only the stable toolchain is needed: the targets are built without a sanitizer
# (`-s none`), so libFuzzer finds panics, aborts, stack overflows and timeouts, not
# memory errors in C code. Each run starts from the committed seeds in
# fuzz/corpus/TARGET and keeps what it learns in a scratch corpus (FUZZ_WORK, by
# default under /var/tmp), so the committed seeds stay small. A crashing input is
# saved in fuzz/artifacts/TARGET/; reproduce it with
#   cargo fuzz run -s none TARGET fuzz/artifacts/TARGET/crash-...
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
work=${FUZZ_WORK:-/var/tmp/topgun-fuzz}
# One target directory for every target, apart from the main crate's: the fuzz
# build uses other compiler flags and would otherwise evict its artefacts.
build=(-s none --codegen-units 16 --target-dir "${FUZZ_TARGET_DIR:-/var/tmp/topgun-fuzz-target}")

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
cargo fuzz --version

if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

started=$SECONDS
cargo fuzz build "${build[@]}"
echo "built ${#targets[@]} targets in $((SECONDS - started)) s"

failed=()
for target in "${targets[@]}"; do
  mkdir -p "$work/$target"
  log=$work/$target.log
  echo
  echo "== $target, $seconds s"
  # -timeout: one input taking over 10 s counts as a hang; -rss_limit_mb: as a leak.
  if cargo fuzz run "${build[@]}" "$target" "$work/$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    >"$log" 2>&1; then
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb)|^Done ' "$log" || true
    grep -E '#[0-9]+.*DONE' "$log" | tail -n 1 || true
  else
    tail -n 40 "$log"
    failed+=("$target")
  fi
done
rm -f "${TMPDIR:-/tmp}"/topgun-fuzz-identity-*

echo
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing found crashes in: ${failed[*]} (inputs in fuzz/artifacts/)"
  exit 1
fi
echo "fuzzing: ${#targets[@]} targets, $seconds s each, no crash"

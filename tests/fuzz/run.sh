#!/bin/sh
# Runs one fuzz target: tests/fuzz/run.sh BUILD_FUZZ_DIR NAME SECONDS. Starts from the inputs
# kept in tests/fuzz/corpus/NAME (read only) and writes what it finds to BUILD_FUZZ_DIR. A crash
# fails the run; its input is in BUILD_FUZZ_DIR/artifacts: fix the bug and keep the input in
# tests/fuzz/corpus/NAME.
set -eu
dir=$1 name=$2 seconds=$3
src=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$dir/corpus/$name" "$dir/artifacts"
exec "$dir/${name}_fuzz" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
  -max_len=65536 -print_final_stats=1 -artifact_prefix="$dir/artifacts/$name-" \
  "$dir/corpus/$name" "$src/corpus/$name"

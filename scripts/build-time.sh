#!/usr/bin/env bash
# Clean full builds of two commits, timed side by side: for each, a fresh clone in its own dir, a
# fresh CMake configure (the Makefile's flags), then every target, with the compiler cache off.
# Both builds run at the same time with JOBS jobs each, so they share whatever else the machine
# is doing. Prints one line per commit and the baseline's times over the new commit's:
#   <commit> wall_s=<s> cpu_s=<user+sys> user_s=<s> sys_s=<s> jobs=<n> dir=<build dir>
#   ratio BASE/NEW wall=<x> cpu=<x>
# Usage: scripts/build-time.sh BASE NEW [JOBS]   (JOBS per build, default 1; docs/BENCHMARKS.md)
set -euo pipefail
base=$(git rev-parse --short "${1:?usage: $0 BASE NEW [JOBS]}")
new=$(git rev-parse --short "${2:?usage: $0 BASE NEW [JOBS]}")
jobs=${3:-1}
src=$(git rev-parse --show-toplevel)
# No compiler cache: neither ccache's own switch nor a launcher from the environment.
export CCACHE_DISABLE=1
unset CMAKE_CXX_COMPILER_LAUNCHER CMAKE_C_COMPILER_LAUNCHER

# Clones and builds one commit, timed (configure and build together); echoes its dir.
build() {
  local commit=$1 dir
  dir=$(mktemp -d "/tmp/kiln-buildtime-$commit.XXXXXX")
  git clone -q --no-checkout "$src" "$dir/src"
  git -C "$dir/src" checkout -q "$commit"
  # KILN_CCACHE is ignored (with a warning) by commits that predate it.
  /usr/bin/time -f '%e %U %S' -o "$dir/time" bash -c "
    cmake -S '$dir/src' -B '$dir/build' -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DKILN_CCACHE=OFF >'$dir/configure.log' 2>&1 &&
    cmake --build '$dir/build' -j $jobs >'$dir/build.log' 2>&1" || {
    echo "$commit: build failed, see $dir/build.log" >&2
    return 1
  }
  echo "$dir"
}

build "$base" >"/tmp/kiln-buildtime-$base.dir" &
pid_base=$!
build "$new" >"/tmp/kiln-buildtime-$new.dir" &
pid_new=$!
wait $pid_base
wait $pid_new

declare -A wall cpu
for commit in "$base" "$new"; do
  dir=$(cat "/tmp/kiln-buildtime-$commit.dir")
  read -r w user sys <"$dir/time"
  wall[$commit]=$w
  cpu[$commit]=$(awk "BEGIN{print $user + $sys}")
  echo "$commit wall_s=$w cpu_s=${cpu[$commit]} user_s=$user sys_s=$sys jobs=$jobs dir=$dir/build"
done
awk "BEGIN{printf \"ratio $base/$new wall=%.2f cpu=%.2f\n\", ${wall[$base]} / ${wall[$new]}, \
  ${cpu[$base]} / ${cpu[$new]}}"

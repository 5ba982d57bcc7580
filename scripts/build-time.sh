#!/usr/bin/env bash
# Clean full build of one commit, timed: a fresh clone in its own dir, a fresh CMake configure
# (the Makefile's flags), then every target, with the compiler cache off. Prints one line:
#   <commit> wall_s=<s> cpu_s=<user+sys> user_s=<s> sys_s=<s> jobs=<n> dir=<build dir>
# Usage: scripts/build-time.sh COMMIT [JOBS]   (run from the repository; see docs/BENCHMARKS.md)
# Measure two commits back to back (A B A B) and compare the ratios: a shared machine is noisy.
set -euo pipefail
commit=$(git rev-parse --short "${1:?usage: $0 COMMIT [JOBS]}")
jobs=${2:-$(nproc)}
src=$(git rev-parse --show-toplevel)
dir=$(mktemp -d "/tmp/kiln-buildtime-$commit.XXXXXX")
git clone -q --no-checkout "$src" "$dir/src"
git -C "$dir/src" checkout -q "$commit"
# No compiler cache: neither ccache's own switch nor a launcher from the environment.
export CCACHE_DISABLE=1
unset CMAKE_CXX_COMPILER_LAUNCHER CMAKE_C_COMPILER_LAUNCHER
# Configure and build, timed together (KILN_CCACHE is ignored by commits that predate it).
/usr/bin/time -f '%e %U %S' -o "$dir/time" bash -c "
  cmake -S '$dir/src' -B '$dir/build' -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DKILN_CCACHE=OFF >'$dir/configure.log' &&
  cmake --build '$dir/build' -j $jobs >'$dir/build.log'"
read -r wall user sys <"$dir/time"
cpu=$(awk "BEGIN{print $user + $sys}")
echo "$commit wall_s=$wall cpu_s=$cpu user_s=$user sys_s=$sys jobs=$jobs dir=$dir/build"

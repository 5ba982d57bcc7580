// kiln-runtime: the in-sandbox runtime (PID 1 of a namespace sandbox) on its own, as a small
// static executable. The namespace backend execs it instead of `kiln runtime` when it sits next
// to the kiln binary. Invoked with the same argv ("kiln runtime ..."), so ps looks the same.
#include <cstring>

#include "runtime/server.h"

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "runtime") == 0) {
    return kiln::runtime::runtimeMain(argc - 1, argv + 1);
  }
  return kiln::runtime::runtimeMain(argc, argv);
}

#include "sandbox/cli.h"

#include <cstdio>

namespace kiln::sandbox {

int sandboxCommandMain(int argc, char** argv) {
  std::fprintf(stderr, "kiln sandbox: not implemented yet\n");
  return 2;
}

}  // namespace kiln::sandbox

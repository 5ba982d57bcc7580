// kiln: one binary, several roles. `runtime` (PID 1 inside a sandbox), `sandbox` and `image` are
// dispatched before any flag parsing or logging setup; everything else is the CLI.
#include <cstring>

#include "cli/cli.h"
#include "runtime/server.h"
#include "sandbox/cli.h"
#include "sandbox/image/cli.h"

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "runtime") == 0) {
    return kiln::runtime::runtimeMain(argc - 1, argv + 1);
  }
  if (argc > 1 && std::strcmp(argv[1], "sandbox") == 0) {
    return kiln::sandbox::sandboxCommandMain(argc - 1, argv + 1);
  }
  if (argc > 1 && std::strcmp(argv[1], "image") == 0) {
    return kiln::sandbox::image::imageCommandMain(argc - 1, argv + 1);
  }
  return kiln::cli::main(argc, argv);
}

// `kiln sandbox ...`: operator commands for the sandbox backend, e.g.
// `kiln sandbox exec [--memory-mb N] [--pids N] [--network none] -- CMD...`.
#pragma once

namespace kiln::sandbox {

// argv[0] is the subcommand name ("sandbox"). Returns the process exit code.
int sandboxCommandMain(int argc, char** argv);

}  // namespace kiln::sandbox

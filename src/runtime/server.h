// The runtime supervisor (`kiln runtime`): PID 1 inside a sandbox. Serves the runtime contract
// (docs/runtime.md) as HTTP/1.1 on a unix socket and reaps every zombie in the pid namespace.
#pragma once

namespace kiln::runtime {

// The environment variable that gives the runtime its token: when set (non-empty), every request
// must carry `Authorization: Bearer <token>`, else 401 `unauthenticated`. The runtime wipes the
// value from its environment at start, so /proc/1/environ inside does not show it.
inline constexpr const char* kTokenEnv = "KILN_RUNTIME_TOKEN";

// Entry point of `kiln runtime [--listen-fd N | --socket PATH] [--workspace DIR]`.
// argv[0] is the subcommand name ("runtime"). Returns the process exit code.
int runtimeMain(int argc, char** argv);

}  // namespace kiln::runtime

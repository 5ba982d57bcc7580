// The `kiln` command line: serve, run, jobs, logs, stop, reply, approve, continue, diff, status.
// Parses flags with CLI11 and talks to a kiln server over the public HTTP API (docs/api.md).
#pragma once

namespace kiln::cli {

// Entry point for every subcommand except `runtime` and `sandbox`, which main.cc dispatches
// first. Returns the process exit code; never throws.
int main(int argc, char** argv);

}  // namespace kiln::cli

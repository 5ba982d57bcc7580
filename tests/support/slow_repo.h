// A git repo for the crash and fleet tests (tests/integration/durable_test.cc, fleet_test.cc).
#pragma once
#include <string>

namespace kiln::testing {

// Makes `dir` a repo whose `make test` sleeps `sleepSeconds` and appends "run" to runs.log on
// every run, so a second execution of the same call shows in the diff. GoogleTest failure on
// error.
void makeSlowRepo(const std::string& dir, const std::string& sleepSeconds);

}  // namespace kiln::testing

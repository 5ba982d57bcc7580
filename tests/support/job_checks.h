// Checks of a finished job's durable record shared by the crash and fleet tests.
#pragma once
#include <string>

#include "store/store.h"

namespace kiln::testing {

// Job `id`'s events are numbered 1..n without a gap and hold exactly one `done`; and its newest
// workspace patch shows the test command's effect ("+run", the `make test` of the tests' slow
// repos) at most once: no tool call ran twice. GoogleTest failures name the job.
void expectEventsOnceAndNoCallTwice(store::Store& st, const std::string& id);

}  // namespace kiln::testing

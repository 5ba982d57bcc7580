// Checks of a job shared by the tests: waiting for its status over the API, and its durable
// record after a crash (the crash and fleet tests).
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "store/store.h"
#include "support/http_client.h"

namespace kiln::testing {

// Polls GET /api/v1/jobs/{id} through `client` for up to 90 s until the job's status is one of
// `want`, and returns the job as last read. On timeout a GoogleTest failure names the job and
// adds what `context` returns (the server's log: read only then).
nlohmann::json waitJobStatus(HttpClient& client, const std::string& id,
                             const std::vector<std::string>& want,
                             const std::function<std::string()>& context);
// The statuses a job ends in.
inline const std::vector<std::string> kFinishedStatuses = {"COMPLETED", "FAILED", "STOPPED"};

// Job `id`'s events are numbered 1..n without a gap and hold exactly one `done`; and its newest
// workspace patch shows the test command's effect ("+run", the `make test` of the tests' slow
// repos) at most once: no tool call ran twice. GoogleTest failures name the job.
void expectEventsOnceAndNoCallTwice(store::Store& st, const std::string& id);

}  // namespace kiln::testing

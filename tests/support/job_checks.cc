#include "support/job_checks.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <thread>

namespace kiln::testing {

nlohmann::json waitJobStatus(HttpClient& client, const std::string& id,
                             const std::vector<std::string>& want,
                             const std::function<std::string()>& context) {
  using namespace std::chrono_literals;
  nlohmann::json job;
  for (auto deadline = std::chrono::steady_clock::now() + 90s;
       std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(50ms)) {
    auto r = client.get("/api/v1/jobs/" + id);
    if (!r.isOk() || r->status != 200) continue;
    job = r->json();
    if (std::find(want.begin(), want.end(), job.value("status", "")) != want.end()) return job;
  }
  ADD_FAILURE() << "job " << id << " never reached the wanted status: " << job.dump() << "\n"
                << context();
  return job;
}

void expectEventsOnceAndNoCallTwice(store::Store& st, const std::string& id) {
  auto events = st.listEvents(id, 0, 100000);
  ASSERT_TRUE(events.isOk()) << events.status().toString();
  ASSERT_FALSE(events->empty()) << id << " has no events";
  int dones = 0;
  for (size_t i = 0; i < events->size(); ++i) {
    EXPECT_EQ((*events)[i].seq, static_cast<int64_t>(i) + 1) << id << ": event seq gap";
    dones += (*events)[i].type == "done";
  }
  EXPECT_EQ(dones, 1) << id;
  auto patch = st.latestPatch(id);
  ASSERT_TRUE(patch.isOk()) << id << ": " << patch.status().toString();
  size_t first = patch->find("+run");
  EXPECT_TRUE(first == std::string::npos || patch->find("+run", first + 1) == std::string::npos)
      << id << " ran `make test` twice:\n"
      << *patch;
}

}  // namespace kiln::testing

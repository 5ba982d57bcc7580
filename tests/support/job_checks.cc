#include "support/job_checks.h"

#include <gtest/gtest.h>

namespace kiln::testing {

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

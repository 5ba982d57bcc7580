#include "support/slow_repo.h"

#include <gtest/gtest.h>

#include "support/temp_dir.h"

namespace kiln::testing {

void makeSlowRepo(const std::string& dir, const std::string& sleepSeconds) {
  std::string out;
  int rc = shell("set -e; mkdir -p " + dir + " && cd " + dir +
                     " && git init -q -b main . && printf 'test:\\n\\tsleep " + sleepSeconds +
                     "\\n\\techo run >> runs.log\\n\\t@echo tests passed\\n' > Makefile && "
                     "git add -A && git -c user.name=t -c user.email=t@t commit -qm init",
                 &out);
  ASSERT_EQ(rc, 0) << out;
}

}  // namespace kiln::testing

#include "common/blocking_pool.h"

#include <gtest/gtest.h>

#include <thread>

#include "common/result.h"

namespace kiln {
namespace {

TEST(BlockingPoolTest, RunsOffTheIoThreadAndResumesOnIt) {
  asio::io_context ioc;
  BlockingPool pool(2);
  std::thread::id ioThread, poolThread, after;
  int value = 0;
  asio::co_spawn(
      ioc,
      [&]() -> Task<void> {
        ioThread = std::this_thread::get_id();
        Result<int> r = co_await pool.run([&]() -> Result<int> {
          poolThread = std::this_thread::get_id();
          return 42;
        });
        after = std::this_thread::get_id();
        value = r.value();
        Status st = co_await pool.run([] { return Status(Code::kNotFound, "x"); });
        EXPECT_EQ(st.code(), Code::kNotFound);
        co_await pool.run([] {});
      },
      asio::detached);
  ioc.run();
  EXPECT_EQ(value, 42);
  EXPECT_NE(ioThread, poolThread);
  EXPECT_EQ(ioThread, after);
}

}  // namespace
}  // namespace kiln

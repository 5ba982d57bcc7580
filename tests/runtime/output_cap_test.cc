#include "runtime/output_cap.h"

#include <gtest/gtest.h>

namespace kiln::runtime {
namespace {

std::string joined(const std::deque<OutputPiece>& pieces) {
  std::string out;
  for (const auto& p : pieces) out += p.data;
  return out;
}

TEST(RuntimeOutputCapTest, UnderTheHeadEverythingStreams) {
  OutputCap cap(10, 4);
  EXPECT_EQ(cap.admit("stdout", "hello"), 5u);
  EXPECT_EQ(cap.admit("stderr", "world"), 5u);
  EXPECT_FALSE(cap.truncated());
  EXPECT_TRUE(cap.finish().empty());
}

TEST(RuntimeOutputCapTest, TailWithinLimitIsKeptWithoutMarker) {
  OutputCap cap(4, 8);
  EXPECT_EQ(cap.admit("stdout", "abcdefg"), 4u);
  EXPECT_FALSE(cap.truncated());
  EXPECT_EQ(joined(cap.finish()), "efg");
}

TEST(RuntimeOutputCapTest, MiddleIsElidedWithCountAndStreamsKept) {
  OutputCap cap(3, 4);
  EXPECT_EQ(cap.admit("stdout", "0123456789"), 3u);  // 3 head, 7 to the tail
  EXPECT_EQ(cap.admit("stderr", "XY"), 0u);
  EXPECT_TRUE(cap.truncated());
  EXPECT_EQ(cap.elided(), 5u);  // 3456789XY: kept "89XY", dropped "34567"
  auto pieces = cap.finish();
  ASSERT_EQ(pieces.size(), 3u);
  EXPECT_EQ(pieces[0].data, "\n[... 5 bytes elided ...]\n");
  EXPECT_EQ(pieces[1].stream, "stdout");
  EXPECT_EQ(pieces[1].data, "89");
  EXPECT_EQ(pieces[2].stream, "stderr");
  EXPECT_EQ(pieces[2].data, "XY");
}

}  // namespace
}  // namespace kiln::runtime

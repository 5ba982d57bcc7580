#include "common/sse.h"

#include <gtest/gtest.h>

namespace kiln {
namespace {

TEST(SseParserTest, ParsesIdEventAndData) {
  SseParser p;
  auto evs = p.feed("id: 3\nevent: status\ndata: {\"status\":\"RUNNING\"}\n\n");
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].id, "3");
  EXPECT_EQ(evs[0].event, "status");
  EXPECT_EQ(evs[0].data, "{\"status\":\"RUNNING\"}");
  EXPECT_EQ(p.lastEventId(), "3");
}

TEST(SseParserTest, EventSplitAcrossChunksAtEveryByte) {
  const std::string stream =
      "id: 1\nevent: step\ndata: {\"a\":1}\n\nid: 2\nevent: done\ndata: {}\n\n";
  SseParser p;
  std::vector<SseEvent> all;
  for (char c : stream) {
    for (auto& e : p.feed(std::string(1, c))) all.push_back(e);
  }
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].event, "step");
  EXPECT_EQ(all[0].data, "{\"a\":1}");
  EXPECT_EQ(all[1].id, "2");
  EXPECT_EQ(all[1].event, "done");
}

TEST(SseParserTest, CrlfAndCrLineEndingsIncludingSplitCrlf) {
  SseParser p;
  auto a = p.feed("event: x\r\ndata: 1\r");
  EXPECT_TRUE(a.empty());
  auto b = p.feed("\n\r\n");  // '\n' completes the split CRLF; "\r\n" is the blank line
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].data, "1");
  auto c = p.feed("data: 2\r\r");
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].data, "2");
}

TEST(SseParserTest, MultiLineDataCommentsAndDefaults) {
  SseParser p;
  auto evs = p.feed(": keep-alive\n\ndata: line1\ndata: line2\ndata\n\n");
  ASSERT_EQ(evs.size(), 1u);  // the comment-only block dispatches nothing
  EXPECT_EQ(evs[0].event, "message");
  EXPECT_EQ(evs[0].data, "line1\nline2\n");
}

TEST(SseParserTest, EventWithoutDataIsNotDispatched) {
  SseParser p;
  EXPECT_TRUE(p.feed("event: status\nid: 9\n\n").empty());
  EXPECT_EQ(p.lastEventId(), "9");  // the id still counts for Last-Event-ID
}

TEST(SseParserTest, IdCarriesOverToLaterEventsWithoutOne) {
  SseParser p;
  auto evs = p.feed("id: 4\ndata: a\n\ndata: b\n\n");
  ASSERT_EQ(evs.size(), 2u);
  EXPECT_EQ(evs[1].id, "4");
  EXPECT_EQ(p.lastEventId(), "4");
}

TEST(SseParserTest, ValueKeepsColonsAndOnlyOneLeadingSpaceIsStripped) {
  SseParser p;
  auto evs = p.feed("data:  two spaces: and colon\n\n");
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].data, " two spaces: and colon");
}

// A model API's stream (the shape the LLM providers read), split at every size, with the three
// line endings the format allows: the providers once had a parser of their own that knew only
// LF and CRLF, and waited forever on an event whose lines ended in a bare CR.
TEST(SseParserTest, ModelStreamSplitAnywhereWithCrLfAndCrlfLines) {
  const std::string stream =
      ": keep-alive\r\nevent: a\r\ndata: {\"x\":1}\r\n\r\ndata: line1\ndata: line2\n\n"
      "event: b\ndata:nospace\n\nevent: c\rdata: cr\r\r";
  for (size_t step : {1u, 2u, 7u, 1000u}) {
    SseParser p;
    std::vector<SseEvent> got;
    for (size_t i = 0; i < stream.size(); i += step) {
      for (SseEvent& e : p.feed(stream.substr(i, step))) got.push_back(std::move(e));
    }
    ASSERT_EQ(got.size(), 4u) << step;
    EXPECT_EQ(got[0].event + " " + got[0].data, "a {\"x\":1}");
    EXPECT_EQ(got[1].event + " " + got[1].data, "message line1\nline2");
    EXPECT_EQ(got[2].event + " " + got[2].data, "b nospace");
    EXPECT_EQ(got[3].event + " " + got[3].data, "c cr");
  }
}

}  // namespace
}  // namespace kiln

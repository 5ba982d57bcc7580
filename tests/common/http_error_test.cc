// The one table of error codes and HTTP statuses, and the Status of an HTTP error answer.
#include "common/http_error.h"

#include <gtest/gtest.h>

namespace kiln {
namespace {

// The server answers every code with its status; a client must read that status back as the
// same code (the CLI once read 429 and 504 as internal, the runtime's client 401).
TEST(HttpErrorTest, EveryCodeSurvivesTheTripThroughItsHttpStatus) {
  for (Code c :
       {Code::kInvalidArgument, Code::kUnauthenticated, Code::kPermissionDenied, Code::kNotFound,
        Code::kConflict, Code::kTooLarge, Code::kUnprocessable, Code::kUnavailable,
        Code::kDeadlineExceeded, Code::kResourceExhausted, Code::kInternal}) {
    SCOPED_TRACE(codeName(c));
    EXPECT_EQ(codeForHttpStatus(httpStatusFor(c)), c);
    const std::string body =
        std::string(R"({"error":{"code":")") + codeName(c) + R"(","message":"m"}})";
    Status st = statusFromHttpError(httpStatusFor(c), body);
    EXPECT_EQ(st.code(), c);
    EXPECT_EQ(st.message(), std::string(codeName(c)) + ": m");
  }
  EXPECT_EQ(httpStatusFor(Code::kResourceExhausted), 429);
  EXPECT_EQ(httpStatusFor(Code::kDeadlineExceeded), 504);
  EXPECT_EQ(codeForHttpStatus(418), Code::kInternal);
}

TEST(HttpErrorTest, OtherBodiesFallBackToTheStatusLine) {
  EXPECT_EQ(statusFromHttpError(500, "oops").message(), "HTTP 500: oops");
  EXPECT_EQ(statusFromHttpError(502, "").message(), "HTTP 502");
  EXPECT_EQ(statusFromHttpError(404, std::string(500, 'x')).message().size(), 200u + 10);
  // Fields of other types never throw (the runtime that sends them is not trusted).
  EXPECT_EQ(statusFromHttpError(409, R"({"error":{"code":7,"message":["x"]}})").message(),
            "conflict: (no message)");
  EXPECT_EQ(statusFromHttpError(409, R"({"error":"flat"})").message(),
            R"(HTTP 409: {"error":"flat"})");
}

}  // namespace
}  // namespace kiln

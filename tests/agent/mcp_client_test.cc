// What kiln makes of an MCP server's tools and results for the model: names the model APIs
// accept, schemas without what they refuse, and the result's content as text.
#include "agent/mcp_client.h"

#include <gtest/gtest.h>

namespace kiln::agent {
namespace {

using nlohmann::json;

TEST(McpToolsTest, NamesAreWhatTheModelApisAcceptAndAtMost64Long) {
  EXPECT_EQ(mcpToolName("fs", "write_file"), "mcp__fs__write_file");
  EXPECT_EQ(mcpToolName("gh", "issues.list/all"), "mcp__gh__issues_list_all");
  EXPECT_EQ(mcpToolName("a", std::string(100, 'x')).size(), 64u);
}

TEST(McpToolsTest, SchemaKeepsTheInputSchemaWithoutItsDialectAndNamesTheServer) {
  json tool = {{"name", "read"},
               {"description", "Read a file."},
               {"inputSchema",
                {{"$schema", "http://json-schema.org/draft-07/schema#"},
                 {"type", "object"},
                 {"properties", {{"path", {{"type", "string"}}}}},
                 {"required", {"path"}}}}};
  json s = mcpToolSchema("fs", tool);
  EXPECT_EQ(s["name"], "mcp__fs__read");
  EXPECT_EQ(s["description"], "(MCP server fs) Read a file.");
  EXPECT_FALSE(s["parameters"].contains("$schema"));
  EXPECT_EQ(s["parameters"]["required"], json::array({"path"}));
  // No schema, or not an object: a tool without parameters.
  json bare = mcpToolSchema("fs", {{"name", "ping"}, {"inputSchema", "odd"}});
  EXPECT_EQ(bare["parameters"], (json{{"type", "object"}, {"properties", json::object()}}));
}

TEST(McpToolsTest, ResultTextIsWhatTheModelSeesAndIsErrorMarksAFailure) {
  Observation o = mcpObservation({{"content",
                                   {{{"type", "text"}, {"text", "line one"}},
                                    {{"type", "image"}, {"mimeType", "image/png"}, {"data", "AA=="}},
                                    {{"type", "resource"},
                                     {"resource", {{"uri", "file:///a"}, {"text", "in a"}}}}}}});
  EXPECT_EQ(o.output, "line one\n[image content, image/png]\nin a");
  EXPECT_FALSE(o.isError);
  Observation e = mcpObservation({{"content", {{{"type", "text"}, {"text", "denied"}}}},
                                  {"isError", true}});
  EXPECT_TRUE(e.isError);
  EXPECT_EQ(e.output, "denied");
  Observation s = mcpObservation({{"content", json::array()}, {"structuredContent", {{"n", 3}}}});
  EXPECT_NE(s.output.find("\"n\": 3"), std::string::npos) << s.output;
  EXPECT_EQ(mcpObservation(json::object()).output, "(no output)");
  EXPECT_EQ(mcpObservation(json("garbage")).output, "(no output)");
}

}  // namespace
}  // namespace kiln::agent

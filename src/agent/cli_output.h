// AgentOutputParser: turns the stdout of an external agent CLI into steps and readable terminal
// text, line by line as it arrives. Pure (no I/O); used from one strand; not thread-safe.
#pragma once
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "store/store.h"

namespace kiln::agent {

// One step parsed from the CLI's output.
struct CliStep {
  store::Step step;  // stepNumber is assigned by the job when it is recorded
  bool isError = false;
  std::string sessionId;  // the CLI's session as far as its output named it by then ("" if not)
};

// Parses a CLI's stdout as it arrives. Understands Claude Code's `--output-format stream-json`
// (system/assistant/user/result lines), Cursor's stream-json (the same plus tool_call lines)
// and Codex's `exec --json` (thread.*, turn.*, item.* lines); any other line, JSON or not, is
// raw text for the terminal. Each tool use with its result becomes a step; the final result
// line becomes a step carrying the run's tokens and cost. Never fails on bad input.
class AgentOutputParser {
 public:
  void feed(std::string_view data);
  // Ends the stream: a partial last line is parsed, tool uses without a result become steps.
  void finish();
  // What to show on the terminal since the last call: raw lines as they came, structured
  // lines rendered as short readable text.
  std::string takeTerminal();
  std::vector<CliStep> takeSteps();
  // The CLI's final answer (Claude's result text, Codex's last agent message), "" if none.
  const std::string& finalText() const { return finalText_; }
  // True once a structured line was understood.
  bool structured() const { return structured_; }
  // The CLI's session id (Claude Code's init line, Codex's thread.started), "" if none.
  const std::string& sessionId() const { return sessionId_; }

 private:
  struct PendingTool {
    std::string name;
    nlohmann::json arguments;
    std::string thought;
  };

  void line(std::string_view text);
  bool claudeLine(const nlohmann::json& j);
  bool codexLine(const nlohmann::json& j);
  bool codexItem(const std::string& event, const nlohmann::json& item);
  bool cursorToolCall(const nlohmann::json& j);
  void toolStarted(const std::string& id, const std::string& name, const nlohmann::json& args);
  void toolFinished(const std::string& id, const std::string& output, bool isError);
  void resultStep(const std::string& text, const nlohmann::json& usage, double usd, bool isError);
  void thought(const std::string& text);

  std::string pending_;   // a partial JSON-looking line
  bool rawLine_ = false;  // in the middle of a line already passed through raw
  std::string terminal_;
  std::vector<CliStep> steps_;
  std::map<std::string, PendingTool> open_;  // tool uses waiting for their result, by id
  std::vector<std::string> openOrder_;
  std::string thought_;  // assistant text since the last tool use
  std::string finalText_;
  std::string sessionId_;
  bool structured_ = false;
};

}  // namespace kiln::agent

#include "agent/tools.h"

namespace kiln::agent {

using nlohmann::json;

Observation errorObservation(std::string msg) {
  Observation o;
  o.output = "error: " + std::move(msg);
  o.isError = true;
  return o;
}

std::string unparsedArguments(const ToolCall& call) {
  const json& a = call.arguments;
  if (!a.is_object() || !a.contains("_error")) return "";
  std::string raw = a.value("_raw", "");
  if (raw.size() > 300) raw = raw.substr(0, 300) + "...";
  return "the arguments of " + call.name + " are not valid JSON (" + a.value("_error", "") +
         "): " + raw + "\nCall the tool again with a JSON object that matches its schema.";
}

namespace {

// Checks that `args` has string fields `names`; returns an error message or "".
std::string requireStrings(const json& args, std::initializer_list<const char*> names) {
  if (!args.is_object()) return "arguments must be a JSON object";
  for (const char* n : names) {
    if (!args.contains(n) || !args[n].is_string()) {
      return std::string("missing string argument '") + n + "'";
    }
  }
  return "";
}

std::string renderRead(const json& r) { return r.value("content", ""); }
std::string renderWrite(const json& r) {
  return "wrote " + std::to_string(r.value("bytes", 0)) + " bytes";
}
std::string renderList(const json& r) {
  std::string out;
  for (const auto& e : r.value("entries", json::array())) {
    out += e.value("name", "") + (e.value("type", "") == "dir" ? "/" : "") + "\n";
  }
  return out.empty() ? "(empty)\n" : out;
}
std::string renderSearch(const json& r) {
  std::string out;
  for (const auto& m : r.value("matches", json::array())) {
    out += m.value("path", "") + ":" + std::to_string(m.value("line", 0)) + ": " +
           m.value("text", "") + "\n";
  }
  if (r.value("truncated", false)) out += "[more matches not shown]\n";
  return out.empty() ? "no matches\n" : out;
}

json schema(const char* name, const char* desc, json props, json required) {
  return {
      {"name", name},
      {"description", desc},
      {"parameters",
       {{"type", "object"}, {"properties", std::move(props)}, {"required", std::move(required)}}}};
}

std::string bashDescription(const TaskInfo& task) {
  std::string in = " in " + task.workdir + ". Returns its output and exit code.";
  if (task.shell == "bash") return "Run a bash command" + in;
  return "Run a shell command with /bin/sh" + in +
         " This sandbox has no bash: use POSIX sh syntax (no [[ ]], arrays, source, "
         "pipefail, <(...) or {1..5}).";
}

// Every tool but bash, whose description depends on the sandbox.
const json& fileSchemas() {
  static const json kSchemas = json::array({
      schema("read_file", "Read a file of the workspace, optionally a line range (1-based).",
             {{"path", {{"type", "string"}}},
              {"start_line", {{"type", "integer"}}},
              {"end_line", {{"type", "integer"}}}},
             {"path"}),
      schema("write_file", "Create or overwrite a file of the workspace.",
             {{"path", {{"type", "string"}}}, {"content", {{"type", "string"}}}},
             {"path", "content"}),
      schema("edit_file",
             "Replace old_str with new_str in a file; old_str must occur exactly once.",
             {{"path", {{"type", "string"}}},
              {"old_str", {{"type", "string"}}},
              {"new_str", {{"type", "string"}}}},
             {"path", "old_str", "new_str"}),
      schema("search", "Search the workspace for a regular expression.",
             {{"pattern", {{"type", "string"}}}, {"path", {{"type", "string"}}}}, {"pattern"}),
      schema("list_dir", "List a directory of the workspace.", {{"path", {{"type", "string"}}}},
             json::array()),
      schema("ask_user", "Ask the human a question and wait for the answer.",
             {{"question", {{"type", "string"}}}}, {"question"}),
      schema("finish", "Finish the task with a summary of what was done.",
             {{"summary", {{"type", "string"}}}}, {"summary"}),
  });
  return kSchemas;
}

}  // namespace

json toolSchemas(const TaskInfo& task) {
  json all = json::array();
  all.push_back(schema("bash", bashDescription(task).c_str(),
                       {{"command", {{"type", "string"}}}, {"timeout_s", {{"type", "integer"}}}},
                       {"command"}));
  for (const json& s : fileSchemas()) all.push_back(s);
  for (const json& s : task.extraTools) all.push_back(s);
  return all;
}

namespace {

// Argument checks and request bodies are plain functions: g++ 12 miscompiles braced
// initializer lists inside coroutines.
std::string checkArgs(const ToolCall& call) {
  const std::string& n = call.name;
  const json& a = call.arguments;
  // The provider could not parse what the model wrote (see llm/http_provider.h).
  if (std::string e = unparsedArguments(call); !e.empty()) return e;
  if (n == "bash") return requireStrings(a, {"command"});
  if (n == "read_file") return requireStrings(a, {"path"});
  if (n == "write_file") return requireStrings(a, {"path", "content"});
  if (n == "edit_file") {
    std::string e = requireStrings(a, {"path", "old_str", "new_str"});
    if (e.empty() && a["old_str"].get_ref<const std::string&>().empty())
      return "old_str must not be empty";
    return e;
  }
  if (n == "search") return requireStrings(a, {"pattern"});
  if (n == "list_dir") return a.is_object() ? "" : "arguments must be a JSON object";
  if (n == "ask_user") return requireStrings(a, {"question"});
  if (n == "finish") return requireStrings(a, {"summary"});
  return "unknown tool '" + n +
         "'; available: bash, read_file, write_file, edit_file, search, list_dir, ask_user, "
         "finish";
}

// Copies the optional arguments `from` → `to` that are present with the right type.
void copyOptional(const json& a, json& body, const char* from, const char* to, bool integer) {
  if (a.contains(from) && (integer ? a[from].is_number_integer() : a[from].is_string()))
    body[to] = a[from];
}

json runtimeBody(const ToolCall& call) {
  const json& a = call.arguments;
  json body = json::object();
  if (call.name == "read_file") {
    body["path"] = a["path"];
    copyOptional(a, body, "start_line", "startLine", true);
    copyOptional(a, body, "end_line", "endLine", true);
  } else if (call.name == "write_file") {
    body["path"] = a["path"];
    body["content"] = a["content"];
  } else if (call.name == "search") {
    body["pattern"] = a["pattern"];
    copyOptional(a, body, "path", "path", false);
  } else if (call.name == "list_dir" || call.name == "edit_file") {
    copyOptional(a, body, "path", "path", false);
  }
  return body;
}

// Applies an exact, unique replacement; returns the new content or an error message.
Result<std::string> replaceOnce(std::string content, const json& a) {
  const std::string& oldStr = a["old_str"].get_ref<const std::string&>();
  size_t pos = content.find(oldStr);
  if (pos == std::string::npos) {
    return invalidArgument("old_str not found in " + a["path"].get<std::string>());
  }
  if (content.find(oldStr, pos + 1) != std::string::npos) {
    return invalidArgument("old_str occurs more than once; include more context");
  }
  content.replace(pos, oldStr.size(), a["new_str"].get<std::string>());
  return content;
}

json writeBody(const json& a, std::string content) {
  json body = json::object();
  body["path"] = a["path"];
  body["content"] = std::move(content);
  return body;
}

}  // namespace

Task<Observation> ToolExecutor::execute(const ToolCall& call) {
  if (auto e = checkArgs(call); !e.empty()) co_return errorObservation(e);
  const std::string& n = call.name;
  if (n == "bash") co_return co_await bash(call.arguments);
  if (n == "read_file") {
    const std::string path = "/files/read";
    const json body = runtimeBody(call);
    co_return co_await viaRuntime(path, body, false, renderRead);
  }
  if (n == "write_file") {
    const std::string path = "/files/write";
    const json body = runtimeBody(call);
    co_return co_await viaRuntime(path, body, true, renderWrite);
  }
  if (n == "search") {
    const std::string path = "/files/search";
    const json body = runtimeBody(call);
    co_return co_await viaRuntime(path, body, false, renderSearch);
  }
  if (n == "list_dir") {
    const std::string path = "/files/list";
    const json body = runtimeBody(call);
    co_return co_await viaRuntime(path, body, false, renderList);
  }
  if (n == "edit_file") {
    const std::string readPath = "/files/read";
    const json readBody = runtimeBody(call);
    auto r = co_await rt_.call(readPath, readBody);
    if (!r.isOk()) co_return errorObservation(r.status().message());
    auto replaced = replaceOnce(r->value("content", ""), call.arguments);
    if (!replaced.isOk()) co_return errorObservation(replaced.status().message());
    const std::string writePath = "/files/write";
    const json body = writeBody(call.arguments, *replaced);
    co_return co_await viaRuntime(writePath, body, true, renderWrite);
  }
  // ask_user and finish end the turn; the runner acts on them.
  Observation o;
  o.output = call.arguments[n == "finish" ? "summary" : "question"];
  o.finish = n == "finish";
  o.askUser = n == "ask_user";
  co_return o;
}

std::optional<ShellMode> parseShellMode(std::string_view name) {
  if (name == "fresh") return ShellMode::kFresh;
  if (name == "login") return ShellMode::kLogin;
  if (name == "session") return ShellMode::kSession;
  return std::nullopt;
}

namespace {

// What the model is told about its session shell beside the output.
std::string sessionNote(const json& session, bool hadState) {
  if (!session.is_object()) return "";
  if (session.value("ended", false)) {
    return "\n[the shell session ended; the next command starts a new one in the last recorded "
           "directory with the exported variables]";
  }
  if (session.value("started", false) && hadState) {
    return "\n[a new shell session was started in the last recorded directory with the exported "
           "variables; shell functions and unexported variables are gone]";
  }
  return "";
}

}  // namespace

Task<Observation> ToolExecutor::bash(const json& a) {
  runtime::ExecRequest req;
  req.cmd = a["command"];
  req.cwd = shell_.workdir;
  req.env = shell_.env;
  req.timeoutMs = shell_.timeoutMs;
  req.login = shell_.mode == ShellMode::kLogin;
  req.session = shell_.mode == ShellMode::kSession;
  req.restore = shell_.restore;
  if (a.contains("timeout_s") && a["timeout_s"].is_number()) {
    req.timeoutMs =
        std::clamp(static_cast<int>(a["timeout_s"].get<double>() * 1000), 1000, 3600 * 1000);
  }
  const bool cappedByBudget = timeLeftMs_ > 0 && timeLeftMs_ < req.timeoutMs;
  if (cappedByBudget) req.timeoutMs = static_cast<int>(timeLeftMs_);
  auto r = co_await rt_.exec(req, onTerminal_);
  if (!r.isOk()) co_return errorObservation("exec failed: " + r.status().message());
  Observation o;
  o.output = r->output;
  o.exitCode = r->exitCode;
  o.isError = r->exitCode != 0;
  o.mutating = true;  // any command may change the workspace
  o.outOfTime = r->timedOut && cappedByBudget;
  if (o.outOfTime) {
    o.output += "\n[killed: the job's wall-clock budget ran out]";
  } else if (r->timedOut) {
    o.output += "\n[timed out after " + std::to_string(req.timeoutMs / 1000) + " s" +
                (req.session ? "; the command was interrupted" : "") + "]";
  }
  o.output += sessionNote(r->session, !shell_.restore.is_null());
  o.output += "\n[exit code " + std::to_string(r->exitCode) + "]";
  if (req.session && r->session.is_object() && r->session["state"].is_object()) {
    shell_.restore = r->session["state"];
  }
  o.shellState = req.session ? shell_.restore : json();
  co_return o;
}

Task<Observation> ToolExecutor::viaRuntime(const std::string& path, const json& body, bool mutating,
                                           std::string (*render)(const json&)) {
  auto r = co_await rt_.call(path, body);
  if (!r.isOk()) co_return errorObservation(r.status().message());
  Observation o;
  o.output = render(*r);
  o.mutating = mutating;
  co_return o;
}

}  // namespace kiln::agent

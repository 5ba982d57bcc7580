// The bash tool against a real runtime process: bash-only constructs behave as in bash (they do
// not under dash), `sh` stands in and says so when the image has no bash, and the "session"
// shell mode keeps one shell per job: cd, export, activated virtualenvs and functions persist, a
// timed-out command is interrupted and the shell stays usable, an ended or lost shell is started
// again from the recorded state.
#include <gtest/gtest.h>

#include "agent/tools.h"
#include "runtime/client.h"
#include "support/bash_constructs.h"
#include "support/runtime_process.h"

namespace kiln::agent {
namespace {

using kiln::testing::runTask;
using kiln::testing::RuntimeProcess;
using nlohmann::json;

ToolCall bashCall(const std::string& command, int timeoutS = 0) {
  ToolCall c;
  c.name = "bash";
  c.arguments = {{"command", command}};
  if (timeoutS > 0) c.arguments["timeout_s"] = timeoutS;
  return c;
}

// One executor (and so one session) per test, over the runtime's socket.
class BashTool {
 public:
  BashTool(const RuntimeProcess& rt, ShellOptions opts)
      : rt_(ioc_.get_executor(), rt.socket()), tools_(rt_, nullptr, std::move(opts)) {}

  Observation run(const std::string& command, int timeoutS = 0) {
    std::optional<Observation> out;
    const ToolCall call = bashCall(command, timeoutS);
    asio::co_spawn(
        ioc_, [&]() -> Task<void> { out.emplace(co_await tools_.execute(call)); }, asio::detached);
    ioc_.restart();
    ioc_.run();
    return std::move(*out);
  }

 private:
  asio::io_context ioc_;
  runtime::RuntimeClient rt_;
  ToolExecutor tools_;
};

ShellOptions in(const RuntimeProcess& rt, ShellMode mode = ShellMode::kFresh) {
  ShellOptions o;
  o.mode = mode;
  o.workdir = rt.workspace();
  return o;
}

// The command's output, before the lines the tool adds ("[exit code N]", session notes).
std::string body(const Observation& o) { return o.output.substr(0, o.output.find("\n[")); }

class BashOnlyConstructs : public ::testing::TestWithParam<kiln::testing::BashConstruct> {};

TEST_P(BashOnlyConstructs, BehaveAsInBash) {
  for (ShellMode mode : {ShellMode::kFresh, ShellMode::kLogin, ShellMode::kSession}) {
    RuntimeProcess rt;  // an empty workspace each time
    BashTool bash(rt, in(rt, mode));
    Observation o = bash.run(GetParam().command);
    EXPECT_EQ(o.exitCode, 0) << o.output;
    EXPECT_EQ(body(o), GetParam().output) << static_cast<int>(mode);
  }
}

INSTANTIATE_TEST_SUITE_P(Table, BashOnlyConstructs,
                         ::testing::ValuesIn(kiln::testing::kBashOnlyConstructs),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(BashToolTest, WithoutBashItRunsShAndItsDescriptionSaysSo) {
  RuntimeProcess rt({"--bash", "/nonexistent/bash"});
  BashTool sh(rt, in(rt));
  Observation o = sh.run("echo \"[${BASH_VERSION}]\"");
  EXPECT_EQ(body(o), "[]\n");
  TaskInfo task;
  task.shell = "sh";
  std::string desc = toolSchemas(task)[0]["description"];
  EXPECT_NE(desc.find("/bin/sh"), std::string::npos) << desc;
  EXPECT_NE(desc.find("no bash"), std::string::npos) << desc;
  task.shell = "bash";
  EXPECT_EQ(toolSchemas(task)[0]["description"].get<std::string>().find("/bin/sh"),
            std::string::npos);
  // A session needs bash: the call says why instead of running elsewhere.
  BashTool session(rt, in(rt, ShellMode::kSession));
  Observation s = session.run("true");
  EXPECT_TRUE(s.isError);
  EXPECT_NE(s.output.find("needs bash"), std::string::npos) << s.output;
}

TEST(BashSessionTest, CdExportFunctionsAndVirtualenvsPersist) {
  RuntimeProcess rt;
  BashTool bash(rt, in(rt, ShellMode::kSession));
  Observation a = bash.run("mkdir -p sub && cd sub && export X=1 && greet() { echo hi $1; }");
  EXPECT_EQ(a.exitCode, 0) << a.output;
  ASSERT_TRUE(a.shellState.is_object());
  EXPECT_EQ(a.shellState["cwd"], rt.workspace() + "/sub");
  EXPECT_EQ(a.shellState["env"]["X"], "1");
  Observation b = bash.run("pwd; echo $X; greet you");
  EXPECT_EQ(body(b), rt.workspace() + "/sub\n1\nhi you\n");

  Observation v = bash.run("python3 -m venv --without-pip v && source v/bin/activate");
  EXPECT_EQ(v.exitCode, 0) << v.output;
  Observation w = bash.run("which python");
  EXPECT_EQ(body(w), rt.workspace() + "/sub/v/bin/python\n");
  EXPECT_EQ(w.shellState["env"]["VIRTUAL_ENV"], rt.workspace() + "/sub/v");
}

TEST(BashSessionTest, OutputCannotFakeTheEndOfACall) {
  RuntimeProcess rt;
  BashTool bash(rt, in(rt, ShellMode::kSession));
  // NULs, the report's own shape, and writes to the report's fd: none of it ends the call.
  Observation o =
      bash.run("printf 'x\\0%s\\0\\0\\0' 0; echo; echo to3 >&3; echo 'after'; (exit 7)");
  EXPECT_EQ(o.exitCode, 7) << o.output;
  EXPECT_NE(o.output.find("Bad file descriptor"), std::string::npos) << o.output;
  EXPECT_NE(o.output.find("after\n"), std::string::npos) << o.output;
  Observation next = bash.run("echo next");
  EXPECT_EQ(body(next), "next\n");
}

TEST(BashSessionTest, ATimedOutCommandIsInterruptedAndTheSessionStaysUsable) {
  RuntimeProcess rt;
  BashTool bash(rt, in(rt, ShellMode::kSession));
  bash.run("cd /tmp && export X=kept");
  Observation t = bash.run("sleep 999", 1);
  EXPECT_NE(t.output.find("[timed out after 1 s; the command was interrupted]"), std::string::npos)
      << t.output;
  EXPECT_EQ(t.exitCode, 130) << t.output;  // SIGINT
  Observation after = bash.run("pwd; echo $X");
  EXPECT_EQ(body(after), "/tmp\nkept\n");
  EXPECT_EQ(after.output.find("new shell session"), std::string::npos) << after.output;
}

TEST(BashSessionTest, AShellThatWillNotStopIsReplacedFromItsRecordedState) {
  RuntimeProcess rt;
  BashTool bash(rt, in(rt, ShellMode::kSession));
  bash.run("cd /tmp && export X=kept");
  // A builtin loop started no process to interrupt: the shell itself is killed and the next
  // call gets a new one in the recorded cwd with X.
  Observation t = bash.run("while :; do :; done", 1);
  EXPECT_NE(t.output.find("the shell session ended"), std::string::npos) << t.output;
  Observation after = bash.run("pwd; echo $X");
  EXPECT_EQ(body(after), "/tmp\nkept\n");
  EXPECT_NE(after.output.find("new shell session"), std::string::npos) << after.output;
  // `exit` ends the shell the same way; the next call starts again.
  Observation e = bash.run("exit 3");
  EXPECT_EQ(e.exitCode, 3);
  EXPECT_EQ(body(bash.run("echo $X")), "kept\n");
}

TEST(BashSessionTest, ANewRuntimeStartsTheShellFromTheRestoredState) {
  json state;
  {
    RuntimeProcess first;
    BashTool bash(first, in(first, ShellMode::kSession));
    state = bash.run(
                    "mkdir -p /tmp/kiln-restore-test && cd /tmp/kiln-restore-test && "
                    "export X=1 && unset LANG")
                .shellState;
  }
  ASSERT_TRUE(state.is_object());
  EXPECT_TRUE(state["env"]["LANG"].is_null());
  RuntimeProcess second;  // a resumed job's new sandbox
  ShellOptions o = in(second, ShellMode::kSession);
  o.restore = state;
  BashTool bash(second, o);
  EXPECT_EQ(body(bash.run("pwd; echo $X; echo ${LANG-unset}")),
            "/tmp/kiln-restore-test\n1\nunset\n");
}

}  // namespace
}  // namespace kiln::agent

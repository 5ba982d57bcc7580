// Drives a real `kiln runtime` process over a real unix socket through RuntimeClient.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "common/http_error.h"
#include "runtime/client.h"
#include "support/runtime_process.h"

namespace kiln::runtime {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

int sh(const std::string& cmd) { return std::system(cmd.c_str()); }

class RuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    rt_ = std::make_unique<kiln::testing::RuntimeProcess>();
    dir_ = rt_->dir();
    ws_ = rt_->workspace();
    socket_ = rt_->socket();
  }
  void TearDown() override { rt_.reset(); }

  template <class T>
  T run(Task<T> task) {
    asio::io_context ioc;
    std::optional<T> out;
    asio::co_spawn(
        ioc, [&]() -> Task<void> { out.emplace(co_await std::move(task)); }, asio::detached);
    ioc.run();
    return std::move(*out);
  }
  Result<ExecResult> exec(ExecRequest req, std::vector<std::string>* chunks = nullptr) {
    asio::io_context ioc;
    RuntimeClient client(ioc.get_executor(), socket_);
    std::optional<Result<ExecResult>> out;
    auto onChunk = [chunks](std::string_view, std::string_view d) {
      if (chunks) chunks->emplace_back(d);
    };
    asio::co_spawn(
        ioc, [&]() -> Task<void> { out.emplace(co_await client.exec(req, onChunk)); },
        asio::detached);
    ioc.run();
    return std::move(*out);
  }
  Result<json> events(int64_t after) {
    return run([this, after]() -> Task<Result<json>> {
      asio::any_io_executor ex = co_await asio::this_coro::executor;
      RuntimeClient client(ex, socket_);
      co_return co_await client.events(after);
    }());
  }
  Result<json> call(const std::string& path, json body) {
    asio::io_context ioc;
    RuntimeClient client(ioc.get_executor(), socket_);
    std::optional<Result<json>> out;
    asio::co_spawn(
        ioc, [&]() -> Task<void> { out.emplace(co_await client.call(path, body)); },
        asio::detached);
    ioc.run();
    return std::move(*out);
  }

  std::unique_ptr<kiln::testing::RuntimeProcess> rt_;
  std::string dir_, ws_, socket_;
};

TEST_F(RuntimeTest, HealthAnswersOk) {
  asio::io_context ioc;
  RuntimeClient client(ioc.get_executor(), socket_);
  std::optional<Status> st;
  asio::co_spawn(
      ioc, [&]() -> Task<void> { st.emplace(co_await client.health()); }, asio::detached);
  ioc.run();
  EXPECT_TRUE(st->isOk()) << st->toString();
}

TEST_F(RuntimeTest, HealthNamesTheShellAndCommandsRunWithBash) {
  auto info = run([this]() -> Task<Result<json>> {
    RuntimeClient client(co_await asio::this_coro::executor, socket_);
    co_return co_await client.info();
  }());
  ASSERT_TRUE(info.isOk()) << info.status().toString();
  EXPECT_EQ((*info)["shell"], "/bin/bash");
  ExecRequest req;
  req.cmd = "echo ${BASH_VERSION:+bash}; shopt -q login_shell && echo login || echo plain";
  req.cwd = ws_;
  auto r = exec(req);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->output, "bash\nplain\n");
  req.login = true;  // bash -lc
  r = exec(req);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->output, "bash\nlogin\n");
}

TEST(RuntimeTokenTest, OnlyItsOwnTokenIsServedAndCommandsDoNotSeeIt) {
  const std::string token = "rt-token-4f2a9c";
  kiln::testing::RuntimeProcess rt({}, token);
  auto health = [&](const std::string& given) {
    return kiln::testing::runTask<Status>([&](asio::any_io_executor ex) -> Task<Status> {
      RuntimeClient client(ex, rt.socket(), given);
      co_return co_await client.health();
    });
  };
  for (const std::string& wrong : {std::string(), std::string("rt-token-4f2a9d"),
                                   std::string("rt-token-4f2a9"), token + "0"}) {
    Status st = health(wrong);
    EXPECT_EQ(st.code(), Code::kUnauthenticated) << "token '" << wrong << "': " << st.toString();
  }
  EXPECT_TRUE(health(token).isOk());
  auto r = kiln::testing::runTask<Result<ExecResult>>(
      [&](asio::any_io_executor ex) -> Task<Result<ExecResult>> {
        RuntimeClient client(ex, rt.socket(), token);
        ExecRequest req;
        req.cmd = "env";
        req.cwd = rt.workspace();
        co_return co_await client.exec(req, nullptr);
      });
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->exitCode, 0) << r->output;
  EXPECT_NE(r->output.find("PATH="), std::string::npos) << r->output;
  EXPECT_EQ(r->output.find(token), std::string::npos) << r->output;
}

TEST(RuntimeWithoutBashTest, CommandsRunWithShAndHealthSaysSo) {
  kiln::testing::RuntimeProcess rt({"--bash", "/nonexistent/bash"});
  auto info =
      kiln::testing::runTask<Result<json>>([&](asio::any_io_executor ex) -> Task<Result<json>> {
        RuntimeClient client(ex, rt.socket());
        co_return co_await client.info();
      });
  ASSERT_TRUE(info.isOk()) << info.status().toString();
  EXPECT_EQ((*info)["shell"], "/bin/sh");
  ExecRequest req;
  req.cmd = "echo \"[${BASH_VERSION}]\"";
  req.cwd = rt.workspace();
  auto r = kiln::testing::runTask<Result<ExecResult>>(
      [&](asio::any_io_executor ex) -> Task<Result<ExecResult>> {
        RuntimeClient client(ex, rt.socket());
        co_return co_await client.exec(req, nullptr);
      });
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->output, "[]\n");
}

TEST_F(RuntimeTest, ExecReturnsOutputAndExitCode) {
  ExecRequest req;
  req.cmd = "echo out; echo err >&2; pwd; echo $LANG $TERM; exit 3";
  req.cwd = ws_;
  auto r = exec(req);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->exitCode, 3);
  EXPECT_FALSE(r->timedOut);
  EXPECT_NE(r->output.find("out\n"), std::string::npos);
  EXPECT_NE(r->output.find("err\n"), std::string::npos);
  EXPECT_NE(r->output.find(ws_ + "\n"), std::string::npos);
  EXPECT_NE(r->output.find("C.UTF-8 dumb"), std::string::npos);
}

TEST_F(RuntimeTest, ExecStreamsChunksBeforeTheCommandEnds) {
  // The second line is only printed once the first has reached the client: the command waits
  // for a file that the chunk callback creates.
  std::string flag = dir_ + "/flag";
  ExecRequest req;
  req.cmd = "echo first; while [ ! -e " + flag + " ]; do sleep 0.01; done; echo second";
  req.cwd = ws_;
  req.timeoutMs = 20'000;
  asio::io_context ioc;
  RuntimeClient client(ioc.get_executor(), socket_);
  std::vector<std::string> chunks;
  std::optional<Result<ExecResult>> out;
  auto onChunk = [&](std::string_view, std::string_view d) {
    chunks.emplace_back(d);
    std::ofstream(flag) << "x";
  };
  asio::co_spawn(
      ioc, [&]() -> Task<void> { out.emplace(co_await client.exec(req, onChunk)); },
      asio::detached);
  ioc.run();
  ASSERT_TRUE(out->isOk()) << out->status().toString();
  EXPECT_FALSE((*out)->timedOut);
  EXPECT_EQ((*out)->output, "first\nsecond\n");
  EXPECT_GE(chunks.size(), 2u);
}

TEST_F(RuntimeTest, ExecPassesStdinAndEnv) {
  ExecRequest req;
  req.cmd = "cat; echo \" $FOO\"";
  req.cwd = ws_;
  req.stdinData = "hello";
  req.env["FOO"] = "bar";
  auto r = exec(req);
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->output, "hello bar\n");
}

TEST_F(RuntimeTest, ExecTimeoutKillsCommandIgnoringSigterm) {
  ExecRequest req;
  std::string pidFile = dir_ + "/child.pid";
  req.cmd = "trap '' TERM; sh -c 'trap \"\" TERM; echo $$ > " + pidFile +
            "; while :; do sleep 1; done' & wait";
  req.cwd = ws_;
  req.timeoutMs = 300;
  auto r = exec(req);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_TRUE(r->timedOut);
  EXPECT_NE(r->exitCode, 0);
  std::string pid;
  std::ifstream(pidFile) >> pid;
  ASSERT_FALSE(pid.empty());
  // The grandchild ignoring SIGTERM must be gone too (killed with the group).
  bool gone = false;
  for (int i = 0; i < 300 && !gone; ++i) {
    std::ifstream stat("/proc/" + pid + "/stat");
    std::string line;
    std::getline(stat, line);
    gone = line.empty() || line.find(") Z") != std::string::npos;
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(gone) << "pid " << pid << " survived the timeout";
}

TEST_F(RuntimeTest, ExecOutputIsCappedWithHeadAndTail) {
  ExecRequest req;
  // 400 KiB of 'a' then a final marker line: over the 256 KiB head + 64 KiB tail default.
  req.cmd = "head -c 409600 /dev/zero | tr '\\0' a; echo; echo THE-END";
  req.cwd = ws_;
  auto r = exec(req);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->exitCode, 0);
  EXPECT_TRUE(r->truncated);
  EXPECT_NE(r->output.find("bytes elided ...]"), std::string::npos);
  EXPECT_LT(r->output.size(), 256u * 1024 + 64 * 1024 + 100);
  EXPECT_EQ(r->output.substr(r->output.size() - 8), "THE-END\n");
  EXPECT_EQ(r->output.substr(0, 4), "aaaa");
}

TEST_F(RuntimeTest, ExecNonUtf8OutputStaysValidJson) {
  ExecRequest req;
  req.cmd = "printf 'ok\\377\\376 end'";
  req.cwd = ws_;
  auto r = exec(req);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->exitCode, 0);
  EXPECT_NE(r->output.find("ok"), std::string::npos);
  EXPECT_NE(r->output.find(" end"), std::string::npos);
}

TEST_F(RuntimeTest, FilesWriteReadListSearch) {
  auto w = call("/files/write", {{"path", "sub/dir/a.txt"}, {"content", "one\ntwo\nthree\n"}});
  ASSERT_TRUE(w.isOk()) << w.status().toString();
  EXPECT_EQ((*w)["bytes"], 14);
  auto r =
      call("/files/read", {{"path", ws_ + "/sub/dir/a.txt"}, {"startLine", 2}, {"endLine", 3}});
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ((*r)["content"], "two\nthree\n");
  EXPECT_EQ((*r)["totalLines"], 3);
  auto l = call("/files/list", {{"path", "sub"}});
  ASSERT_TRUE(l.isOk());
  ASSERT_EQ((*l)["entries"].size(), 1u);
  EXPECT_EQ((*l)["entries"][0]["name"], "dir");
  EXPECT_EQ((*l)["entries"][0]["type"], "dir");
  fs::create_directories(ws_ + "/.git");
  std::ofstream(ws_ + "/.git/x") << "two\n";
  auto s = call("/files/search", {{"pattern", "t[wh]"}});
  ASSERT_TRUE(s.isOk()) << s.status().toString();
  ASSERT_EQ((*s)["matches"].size(), 2u);
  EXPECT_EQ((*s)["matches"][0]["path"], "sub/dir/a.txt");
  EXPECT_EQ((*s)["matches"][0]["line"], 2);
  auto missing = call("/files/read", {{"path", "nope"}});
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
}

TEST_F(RuntimeTest, FilesRefuseSymlinkAndDotDotEscapes) {
  fs::create_symlink("/etc", ws_ + "/etc-link");
  fs::create_symlink("/etc/passwd", ws_ + "/passwd-link");
  for (const char* path : {"etc-link/passwd", "passwd-link", "../rt.sock", "/etc/passwd"}) {
    auto r = call("/files/read", {{"path", path}});
    ASSERT_FALSE(r.isOk()) << path;
    EXPECT_NE(r.status().message().find("path_outside_workspace"), std::string::npos)
        << path << ": " << r.status().toString();
  }
  auto w = call("/files/write", {{"path", "etc-link/evil"}, {"content", "x"}});
  EXPECT_FALSE(w.isOk());
  EXPECT_FALSE(fs::exists("/etc/evil"));
  auto l = call("/files/list", {{"path", "etc-link"}});
  EXPECT_FALSE(l.isOk());
}

TEST_F(RuntimeTest, GitDiffAndCommitOnRealRepo) {
  ASSERT_EQ(sh("cd " + ws_ +
               " && git init -q && git -c user.name=t -c user.email=t@t commit -q "
               "--allow-empty -m init"),
            0);
  auto head = call("/git/head", json::object());
  ASSERT_TRUE(head.isOk()) << head.status().toString();
  std::string base = (*head)["commit"];
  EXPECT_EQ(base.size(), 40u);
  std::ofstream(ws_ + "/new.txt") << "hello\n";
  std::ofstream(ws_ + "/bin.dat", std::ios::binary) << std::string("\0\1\2\377", 4);
  auto diff = call("/git/diff", {{"base", base}});
  ASSERT_TRUE(diff.isOk()) << diff.status().toString();
  std::string d = (*diff)["diff"];
  EXPECT_NE(d.find("new.txt"), std::string::npos);
  EXPECT_NE(d.find("GIT binary patch"), std::string::npos);
  EXPECT_EQ(std::string((*diff)["tree"]).size(), 40u);
  // The user's index is untouched: nothing staged.
  EXPECT_EQ(sh("cd " + ws_ + " && git diff --cached --quiet"), 0);

  auto c = call("/git/commit", {{"branch", "kiln/job1"}, {"message", "agent work"}});
  ASSERT_TRUE(c.isOk()) << c.status().toString();
  EXPECT_TRUE((*c)["committed"]);
  EXPECT_NE((*c)["commit"], base);
  auto again = call("/git/commit", {{"branch", "kiln/job1"}, {"message", "nothing"}});
  ASSERT_TRUE(again.isOk());
  EXPECT_FALSE((*again)["committed"]);

  // The diff applies on a fresh clone of the base.
  std::string other = dir_ + "/other";
  ASSERT_EQ(
      sh("git clone -q " + ws_ + " " + other + " && cd " + other + " && git checkout -q " + base),
      0);
  (void)sh("true");
  auto diff2 = call("/git/diff", {{"base", base}});
  ASSERT_TRUE(diff2.isOk());
  std::ofstream(dir_ + "/p.patch", std::ios::binary) << std::string((*diff2)["diff"]);
  EXPECT_EQ(sh("cd " + other + " && git apply --binary " + dir_ + "/p.patch"), 0);
  EXPECT_TRUE(fs::exists(other + "/bin.dat"));
}

TEST_F(RuntimeTest, GitDiffSkipsAnUnchangedTreeAndSeesLaterChanges) {
  ASSERT_EQ(sh("cd " + ws_ +
               " && git init -q && echo a > a.txt && git add a.txt && "
               "git -c user.name=t -c user.email=t@t commit -q -m init"),
            0);
  std::string base = (*call("/git/head", json::object()))["commit"];
  auto first = call("/git/diff", {{"base", base}});
  ASSERT_TRUE(first.isOk()) << first.status().toString();
  std::string tree = (*first)["tree"];
  EXPECT_EQ((*first)["diff"], "");
  auto same = call("/git/diff", {{"base", base}, {"since", tree}});
  ASSERT_TRUE(same.isOk());
  EXPECT_TRUE(same->value("unchanged", false));
  EXPECT_FALSE(same->contains("diff"));
  // Same size, same second: the cached index must still notice the change.
  std::ofstream(ws_ + "/a.txt") << "b\n";
  auto changed = call("/git/diff", {{"base", base}, {"since", tree}});
  ASSERT_TRUE(changed.isOk());
  EXPECT_NE((*changed)["tree"], tree);
  EXPECT_NE(changed->value("diff", "").find("+b"), std::string::npos) << changed->dump();
  fs::remove(ws_ + "/a.txt");
  auto removed = call("/git/diff", {{"base", base}, {"fresh", true}});
  ASSERT_TRUE(removed.isOk());
  EXPECT_NE(removed->value("diff", "").find("deleted file"), std::string::npos);
}

TEST_F(RuntimeTest, GitPushSendsTheBranchToTheRemote) {
  std::string remote = dir_ + "/remote.git";
  ASSERT_EQ(sh("git init -q --bare " + remote + " && cd " + ws_ +
               " && git init -q && "
               "git -c user.name=t -c user.email=t@t commit -q --allow-empty -m init"),
            0);
  auto c = call("/git/commit", {{"branch", "kiln/job1"}, {"message", "agent work"}});
  ASSERT_TRUE(c.isOk()) << c.status().toString();
  auto p = call("/git/push", {{"remote", remote}, {"branch", "kiln/job1"}, {"token", "t0k"}});
  ASSERT_TRUE(p.isOk()) << p.status().toString();
  EXPECT_TRUE((*p)["pushed"]);
  std::string out;
  FILE* f = popen(("git --git-dir=" + remote + " rev-parse refs/heads/kiln/job1").c_str(), "r");
  char buf[64] = {};
  if (f) {
    if (fgets(buf, sizeof buf, f)) out = buf;
    pclose(f);
  }
  EXPECT_EQ(out.substr(0, 40), std::string((*c)["commit"]));
  auto bad = call("/git/push", {{"remote", "--upload-pack=evil"}, {"branch", "kiln/job1"}});
  EXPECT_FALSE(bad.isOk());
  auto missing = call("/git/push", {{"remote", dir_ + "/nope.git"}, {"branch", "kiln/job1"}});
  EXPECT_FALSE(missing.isOk());
}

TEST_F(RuntimeTest, EventsLogCommandsAndOrphansAfterASeq) {
  auto first = events(0);
  ASSERT_TRUE(first.isOk()) << first.status().toString();
  int64_t last = first->empty() ? 0 : first->back()["seq"].get<int64_t>();
  ExecRequest req;
  req.cmd = "sleep 0.2 & exit 3";  // leaves an orphan behind
  req.cwd = ws_;
  auto r = exec(req);
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->exitCode, 3);
  json got;
  for (int i = 0; i < 100; ++i) {
    auto e = events(last);
    ASSERT_TRUE(e.isOk()) << e.status().toString();
    got = *e;
    bool orphan = false;
    for (const auto& ev : got) orphan |= ev["type"] == "orphan_exit";
    if (orphan) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_GE(got.size(), 3u) << got.dump();
  EXPECT_EQ(got[0]["type"], "exec_start");
  EXPECT_NE(got[0]["cmd"].get<std::string>().find("sleep 0.2"), std::string::npos);
  EXPECT_GT(got[0]["seq"].get<int64_t>(), last);
  bool sawExit = false, sawOrphan = false;
  for (const auto& ev : got) {
    if (ev["type"] == "exec_exit") {
      sawExit = true;
      EXPECT_EQ(ev["exitCode"], 3);
      EXPECT_EQ(ev["pid"], got[0]["pid"]);
    }
    sawOrphan |= ev["type"] == "orphan_exit";
  }
  EXPECT_TRUE(sawExit && sawOrphan) << got.dump();
  // after = the newest seq: nothing new.
  int64_t newest = got.back()["seq"];
  auto none = events(newest);
  ASSERT_TRUE(none.isOk());
  EXPECT_TRUE(none->empty()) << none->dump();
}

// One request on a fresh connection, as raw HTTP: the status and the body.
std::pair<int, json> rawPost(const std::string& socket, const std::string& target,
                             const std::string& body) {
  asio::io_context ioc;
  asio::local::stream_protocol::socket sock(ioc);
  boost::system::error_code ec;
  sock.connect(asio::local::stream_protocol::endpoint(socket), ec);
  if (ec) return {0, json()};
  http::request<http::string_body> req{http::verb::post, target, 11};
  req.set(http::field::host, "runtime");
  req.body() = body;
  req.prepare_payload();
  http::write(sock, req, ec);
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  if (!ec) http::read(sock, buffer, res, ec);
  if (ec) return {0, json()};
  return {res.result_int(), json::parse(res.body(), nullptr, false)};
}

// A handler that throws (nlohmann's value() on a field of another type) used to end in
// std::terminate on its connection thread, killing PID 1 and the sandbox with it. It is a 500
// JSON error now, and the runtime serves the next request.
TEST_F(RuntimeTest, HandlerExceptionIsA500AndTheRuntimeServesOn) {
  std::ofstream(ws_ + "/a.txt") << "one\ntwo\n";
  for (const auto& [target, body] :
       {std::pair{"/files/read", R"({"path":"a.txt","startLine":"2"})"},
        std::pair{"/exec", R"({"cmd":"true","timeoutMs":"soon"})"}}) {
    SCOPED_TRACE(target);
    auto [status, answer] = rawPost(socket_, target, body);
    ASSERT_EQ(status, 500) << answer.dump();
    EXPECT_EQ(answer["error"]["code"], "internal") << answer.dump();
    EXPECT_NE(answer["error"]["message"].get<std::string>().find(target), std::string::npos);
    ASSERT_EQ(waitpid(rt_->pid(), nullptr, WNOHANG), 0) << "the runtime died";
    auto read = call("/files/read", json{{"path", "a.txt"}, {"startLine", 2}});
    ASSERT_TRUE(read.isOk()) << read.status().toString();
    EXPECT_EQ((*read)["content"], "two\n");
  }
  ExecRequest req;
  req.cmd = "echo still here";
  req.cwd = ws_;
  auto r = exec(req);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->output, "still here\n");
}

// The runtime is untrusted: whatever types its answers hold, the client reads them as values or
// errors and never throws (a throw would unwind the job's coroutine). A fake runtime answers one
// /exec with fields of the wrong types.
TEST(RuntimeClientTest, ExecAnswerWithFieldsOfOtherTypesIsReadNotThrownOn) {
  const kiln::testing::TempDir dir;
  const std::string path = dir.file("fake.sock");
  asio::io_context serverIo;
  asio::local::stream_protocol::acceptor acceptor(serverIo,
                                                  asio::local::stream_protocol::endpoint(path));
  std::thread server([&] {
    boost::system::error_code ec;
    asio::local::stream_protocol::socket sock(serverIo);
    acceptor.accept(sock, ec);
    beast::flat_buffer buffer;
    http::request<http::string_body> req;
    if (!ec) http::read(sock, buffer, req, ec);
    auto chunk = [](const std::string& line) {
      char size[16];
      std::snprintf(size, sizeof size, "%zx\r\n", line.size());
      return size + line + "\r\n";
    };
    const std::string answer =
        "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" +
        chunk(R"({"stream":5,"data":["x"]})"
              "\n") +
        chunk(R"({"exit":{"exitCode":"x","timedOut":"no","durationMs":"1","truncated":1}})"
              "\n") +
        "0\r\n\r\n";
    if (!ec) asio::write(sock, asio::buffer(answer), ec);
  });
  asio::io_context ioc;
  RuntimeClient client(ioc.get_executor(), path);
  std::optional<Result<ExecResult>> out;
  ExecRequest req;
  req.cmd = "true";
  asio::co_spawn(
      ioc, [&]() -> Task<void> { out.emplace(co_await client.exec(req, nullptr)); },
      asio::detached);
  std::string thrown;
  try {
    ioc.run();
  } catch (const std::exception& e) {
    thrown = e.what();
  }
  server.join();
  ASSERT_EQ(thrown, "") << "the client threw";
  ASSERT_TRUE(out && out->isOk()) << (out ? out->status().toString() : "no answer");
  EXPECT_EQ((*out)->exitCode, -1);
  EXPECT_FALSE((*out)->timedOut);
  EXPECT_EQ((*out)->output, "");
}

// Error bodies of any shape become a status with the HTTP status's code.
TEST(RuntimeClientTest, ErrorBodiesOfAnyShapeBecomeAStatus) {
  for (const char* body :
       {R"({"error":{"code":7,"message":["x"]}})", R"({"error":"flat"})", "not json", R"([1,2])"}) {
    Status st = statusFromHttpError(409, body);
    EXPECT_EQ(st.code(), Code::kConflict) << body;
    EXPECT_FALSE(st.message().empty()) << body;
  }
}

TEST_F(RuntimeTest, MalformedBodyIsA400) {
  auto r = call("/files/read", json::array());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  auto unknown = call("/nope", json::object());
  EXPECT_EQ(unknown.status().code(), Code::kNotFound);
}

}  // namespace
}  // namespace kiln::runtime

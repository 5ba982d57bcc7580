// Shared fixture for namespace-sandbox tests: a backend over a temp state dir, helpers that run
// commands through the real runtime, and host-side counters for leak checks.
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "common/files.h"
#include "runtime/client.h"
#include "sandbox/ns/layout.h"
#include "sandbox/sandbox.h"

namespace kiln::sandbox::testing {

inline std::string tempDir(const char* tag) {
  std::string tmpl = std::string("/tmp/k") + tag + "-XXXXXX";
  if (!mkdtemp(tmpl.data())) return "";
  return tmpl;
}

inline std::string readText(const std::string& path) { return kiln::readFile(path).valueOr(""); }

inline int countMounts() {
  std::ifstream in("/proc/self/mountinfo");
  int n = 0;
  for (std::string line; std::getline(in, line);) ++n;
  return n;
}

// Host processes running `kiln runtime` (PID 1 of a sandbox) whose cgroup is kiln/<idPrefix>*:
// other test binaries may run sandboxes of their own at the same time.
inline int countRuntimes(const std::string& idPrefix) {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(e.path() / "cmdline");
    std::string cmd((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (cmd.rfind(std::string("kiln\0runtime", 12), 0) != 0) continue;
    n += readText(e.path() / "cgroup").find("/kiln/" + idPrefix) != std::string::npos;
  }
  return n;
}

// Attached loop devices whose backing file lies under dir (all of them for "/").
inline int countLoops(const std::string& dir = "/") {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/sys/block")) {
    std::string backing = readText((e.path() / "loop" / "backing_file").string());
    n += !backing.empty() && backing.rfind(dir, 0) == 0;
  }
  return n;
}

// Host mounts at or under dir.
inline int countMountsUnder(const std::string& dir) {
  std::ifstream in("/proc/self/mountinfo");
  int n = 0;
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    std::string skip, target;
    fields >> skip >> skip >> skip >> skip >> target;
    n += target.rfind(dir, 0) == 0;
  }
  return n;
}

// The kiln/ parents of sandbox cgroups on this host: the v1 controllers, else the v2 root.
inline std::vector<std::string> cgroupParents() {
  if (std::filesystem::exists("/sys/fs/cgroup/memory/kiln")) {
    return {"/sys/fs/cgroup/memory/kiln", "/sys/fs/cgroup/pids/kiln", "/sys/fs/cgroup/cpu/kiln"};
  }
  for (const char* p : {"/sys/fs/cgroup/unified/kiln", "/sys/fs/cgroup/kiln"}) {
    if (std::filesystem::exists(p)) return {p};
  }
  return {};
}

// Sandbox cgroups (any hierarchy) whose name starts with idPrefix.
inline int countCgroups(const std::string& idPrefix) {
  int n = 0;
  for (const auto& parent : cgroupParents()) {
    for (const auto& e : std::filesystem::directory_iterator(parent)) {
      n += e.is_directory() && e.path().filename().string().rfind(idPrefix, 0) == 0;
    }
  }
  return n;
}

// Entries of a backend's state and run dirs other than the shared ones (.skel, .etcmask, .mnt).
inline std::vector<std::string> sandboxStateEntries(const std::string& stateDir) {
  std::vector<std::string> out;
  for (const std::string& dir : {stateDir, runDirFor(stateDir)}) {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
      std::string name = e.path().filename();
      if (name[0] != '.') out.push_back(name);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

// runsc present: the gvisor backend's tests run (CI installs it); absent: they skip, saying so.
inline bool haveRunsc() {
  for (const char* p : {"/usr/sbin/runsc", "/usr/bin/runsc", "/usr/local/bin/runsc"}) {
    if (access(p, X_OK) == 0) return true;
  }
  return false;
}

// A backend over a temp state dir and helpers; the namespace backend unless backendName_ says
// "gvisor" before SetUp.
class NsSandboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "sandbox tests need root";
    if (isGvisor() && !haveRunsc()) GTEST_SKIP() << "gvisor: runsc is not installed";
    state_ = tempDir("st");
    auto backend = isGvisor() ? newGvisorBackend({state_, KILN_BINARY, nullptr})
                              : newNamespaceBackend({state_, KILN_BINARY, nullptr, ""});
    ASSERT_TRUE(backend.isOk()) << backend.status().toString();
    backend_ = std::move(backend).value();
  }
  bool isGvisor() const { return backendName_ == "gvisor"; }
  void TearDown() override {
    for (auto& sb : sandboxes_) {
      if (sb) (void)sb->destroy();
    }
    sandboxes_.clear();
    backend_.reset();
    for (const auto& d : dirs_) std::filesystem::remove_all(d);
    if (!state_.empty()) std::filesystem::remove_all(state_);
  }

  // Ids unique across concurrently running test binaries.
  std::string uniqueId(const std::string& tag) {
    return tag + std::to_string(getpid()) + "_" + std::to_string(++counter_);
  }
  std::string newWorkspace() {
    std::string d = tempDir("ws");
    dirs_.push_back(d);
    return d;
  }
  Sandbox* create(SandboxSpec spec) {
    if (spec.workspaceDir.empty()) spec.workspaceDir = newWorkspace();
    if (spec.id.empty()) spec.id = uniqueId("t");
    auto sb = backend_->create(spec);
    EXPECT_TRUE(sb.isOk()) << sb.status().toString();
    if (!sb.isOk()) return nullptr;
    sandboxes_.push_back(std::move(sb).value());
    return sandboxes_.back().get();
  }
  Result<runtime::ExecResult> exec(Sandbox* sb, const std::string& cmd, int timeoutMs = 30'000) {
    asio::io_context ioc;
    runtime::RuntimeClient client(ioc.get_executor(), sb->runtimeSocket(), sb->runtimeToken());
    runtime::ExecRequest req;
    req.cmd = cmd;
    req.timeoutMs = timeoutMs;
    std::optional<Result<runtime::ExecResult>> out;
    asio::co_spawn(
        ioc, [&]() -> Task<void> { out.emplace(co_await client.exec(req, nullptr)); },
        asio::detached);
    ioc.run();
    return std::move(*out);
  }
  // Output of cmd, which must exit 0.
  std::string run(Sandbox* sb, const std::string& cmd) {
    auto r = exec(sb, cmd);
    EXPECT_TRUE(r.isOk()) << cmd << ": " << r.status().toString();
    if (!r.isOk()) return "";
    EXPECT_EQ(r->exitCode, 0) << cmd << ": " << r->output;
    return r->output;
  }
  Result<nlohmann::json> call(Sandbox* sb, const std::string& path, nlohmann::json body) {
    asio::io_context ioc;
    runtime::RuntimeClient client(ioc.get_executor(), sb->runtimeSocket(), sb->runtimeToken());
    std::optional<Result<nlohmann::json>> out;
    asio::co_spawn(
        ioc, [&]() -> Task<void> { out.emplace(co_await client.call(path, body)); },
        asio::detached);
    ioc.run();
    return std::move(*out);
  }

  std::string backendName_ = "namespace";
  std::string state_;
  std::unique_ptr<SandboxBackend> backend_;
  std::vector<std::unique_ptr<Sandbox>> sandboxes_;
  std::vector<std::string> dirs_;
  int counter_ = 0;
};

// The same tests over every backend: TEST_P(Suite, ...) with
// INSTANTIATE_TEST_SUITE_P(Backends, Suite, ::testing::ValuesIn(kBackends), backendTestName).
class BackendSandboxTest : public NsSandboxTest, public ::testing::WithParamInterface<std::string> {
 protected:
  void SetUp() override {
    backendName_ = GetParam();
    NsSandboxTest::SetUp();
  }
};

inline const std::vector<std::string> kBackends = {"namespace", "gvisor"};
inline std::string backendTestName(const ::testing::TestParamInfo<std::string>& info) {
  return info.param;
}

}  // namespace kiln::sandbox::testing

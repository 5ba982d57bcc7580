// `kiln sandbox exec`: runs one command in a fresh sandbox (namespace or gvisor backend), streams
// its output and exits with its exit code. For operators and tests. When a `kiln serve` runs on
// the data dir, the sandbox comes from it (exec_service.h: its warm pools, its backends probed
// once); else from a backend set up for this call.
#include "sandbox/cli.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>

#include "node/node.h"
#include "runtime/client.h"
#include "sandbox/exec_service.h"
#include "sandbox/sandbox.h"

namespace kiln::sandbox {
namespace {

struct ExecOptions {
  SandboxSpec spec;
  // One per user: a rootless user must not share (or be refused) root's.
  std::string stateDir =
      geteuid() == 0 ? "/tmp/kiln-sbx" : "/tmp/kiln-sbx-" + std::to_string(geteuid());
  std::string imagesDir = node::defaultDataDir() + "/images";
  int timeoutMs = 0;
  bool userNamespace = false;
  std::string backend = "namespace";
  std::string gvisorPlatform = "auto";
  std::vector<std::string> command;
  // A `kiln serve` on this data dir gives the sandbox (exec_service.h), unless viaNode is off.
  std::string dataDir = node::defaultDataDir();
  bool viaNode = true;
};

std::string shellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string selfBinary() {
  std::error_code ec;
  auto path = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? "" : path.string();
}

Result<runtime::ExecResult> execIn(const std::string& socket, const std::string& token,
                                   const ExecOptions& o) {
  std::string cmd;
  for (const auto& arg : o.command) cmd += (cmd.empty() ? "" : " ") + shellQuote(arg);
  runtime::ExecRequest req;
  req.cmd = cmd;
  req.timeoutMs = o.timeoutMs > 0 ? o.timeoutMs : 24 * 3600 * 1000;
  asio::io_context ioc;
  runtime::RuntimeClient client(ioc.get_executor(), socket, token);
  auto onChunk = [](std::string_view stream, std::string_view data) {
    FILE* f = stream == "stderr" ? stderr : stdout;
    fwrite(data.data(), 1, data.size(), f);
    fflush(f);
  };
  std::optional<Result<runtime::ExecResult>> out;
  asio::co_spawn(
      ioc, [&]() -> Task<void> { out.emplace(co_await client.exec(req, onChunk)); },
      asio::detached);
  ioc.run();
  return std::move(*out);
}

// The command's outcome as the exit code, and what to tell the user about it.
int reportOutcome(const Result<runtime::ExecResult>& r, const std::optional<LimitBreach>& breach) {
  int code = 1;
  if (!r) {
    std::fprintf(stderr, "kiln sandbox: %s\n", r.status().message().c_str());
  } else {
    code = r->exitCode;
    if (r->timedOut) std::fprintf(stderr, "kiln sandbox: timed out\n");
  }
  if (breach) {
    std::fprintf(stderr, "kiln sandbox: limit %s: %s\n", breach->resource.c_str(),
                 breach->message.c_str());
  }
  return code;
}

// Through a `kiln serve` on o.dataDir; nullopt when none listens there.
std::optional<int> runExecViaNode(const ExecOptions& o) {
  SandboxSpec spec = o.spec;
  if (!spec.workspaceDir.empty()) {
    std::error_code ec;
    spec.workspaceDir = std::filesystem::absolute(spec.workspaceDir, ec).string();
  }
  auto held = ExecServiceClient::acquire(o.dataDir + "/sandbox.sock", o.backend, spec);
  if (!held) return std::nullopt;
  if (!*held) {
    std::fprintf(stderr, "kiln sandbox: %s\n", held->status().message().c_str());
    return 1;
  }
  ExecServiceClient& sb = ***held;
  Result<runtime::ExecResult> r = execIn(sb.runtimeSocket(), sb.runtimeToken(), o);
  Result<std::optional<LimitBreach>> breach = sb.release();
  return reportOutcome(r, breach ? *breach : std::nullopt);
}

int runExec(ExecOptions& o) {
  if (o.viaNode) {
    if (std::optional<int> code = runExecViaNode(o)) return *code;
  }
  bool tempWorkspace = o.spec.workspaceDir.empty();
  if (tempWorkspace) {
    std::string tmpl = "/tmp/kiln-ws-XXXXXX";
    if (!mkdtemp(tmpl.data())) {
      std::perror("kiln sandbox: mkdtemp");
      return 1;
    }
    o.spec.workspaceDir = tmpl;
  }
  o.spec.id = "x" + std::to_string(getpid());
  int code = 1;
  auto backend =
      o.backend == "gvisor"
          ? newGvisorBackend({o.stateDir, selfBinary(), nullptr, "", o.gvisorPlatform})
          : newNamespaceBackend({o.stateDir, selfBinary(), nullptr, o.imagesDir, o.userNamespace});
  if (backend) {
    for (const std::string& l : (*backend)->limitations()) {
      std::fprintf(stderr, "kiln sandbox: warning: %s\n", l.c_str());
    }
  }
  auto sb =
      backend ? (*backend)->create(o.spec) : Result<std::unique_ptr<Sandbox>>(backend.status());
  if (!sb) {
    std::fprintf(stderr, "kiln sandbox: %s\n", sb.status().message().c_str());
  } else {
    Result<runtime::ExecResult> r = execIn((*sb)->runtimeSocket(), (*sb)->runtimeToken(), o);
    code = reportOutcome(r, (*sb)->limitBreach());
    (void)(*sb)->destroy();
  }
  if (tempWorkspace) std::filesystem::remove_all(o.spec.workspaceDir);
  return code;
}

}  // namespace

int sandboxCommandMain(int argc, char** argv) {
  CLI::App app{
      "kiln sandbox: run commands in a fresh sandbox (as root; run by any "
      "other user, each sandbox also gets a user namespace: rootless mode, see "
      "docs/runtime.md)",
      "kiln sandbox"};
  app.require_subcommand(1);
  ExecOptions o;
  CLI::App* exec = app.add_subcommand("exec", "run one command in a fresh sandbox");
  exec->add_option("--memory-mb", o.spec.memoryMb, "memory limit (MiB, 0 = none)");
  exec->add_option("--pids", o.spec.pids, "process limit (0 = default 1024)");
  exec->add_option("--cpus", o.spec.cpus, "cpu quota in cores (0 = none)");
  exec->add_option("--disk-mb", o.spec.diskMb, "disk quota for writable layers (0 = none)");
  exec->add_option("--network", o.spec.network, "none | allowlist (egress via the proxy)")
      ->check(CLI::IsMember({"none", "allowlist"}));
  exec->add_option("--allow-host", o.spec.allowHosts,
                   "with --network allowlist: host[:port] or *.domain[:port] (repeatable)")
      ->take_all()
      ->allow_extra_args(false);
  exec->add_option("--image", o.spec.image, "base image: a name (kiln image build) or a path");
  exec->add_option("--images-dir", o.imagesDir, "where named images live");
  exec->add_option("--workspace", o.spec.workspaceDir, "host dir at /workspace (default: temp)");
  exec->add_option("--state-dir", o.stateDir, "host dir for sandbox state");
  exec->add_option("--timeout-ms", o.timeoutMs, "kill the command after this long");
  exec->add_flag("--root", o.spec.rootInside, "run as root inside (still no capabilities)");
  exec->add_flag("--userns", o.userNamespace,
                 "as root: a user namespace too, so ids inside are unprivileged on the host "
                 "(rootless mode always has one)");
  exec->add_option("--backend", o.backend, "namespace (default) | gvisor (a kernel of its own)")
      ->check(CLI::IsMember({"namespace", "gvisor"}));
  exec->add_option("--gvisor-platform", o.gvisorPlatform, "auto | ptrace | kvm")
      ->check(CLI::IsMember({"auto", "ptrace", "kvm"}));
  exec->add_option("--data-dir", o.dataDir,
                   "a `kiln serve` on this data dir gives the sandbox (its warm pools), when one "
                   "runs there and none of --state-dir, --images-dir, --userns, "
                   "--gvisor-platform, --standalone is given");
  bool standalone = false;
  exec->add_flag("--standalone", standalone, "never ask a `kiln serve` for the sandbox");
  exec->add_option("command", o.command, "command and arguments (after --)")->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  o.viaNode = !standalone && exec->count("--state-dir") == 0 && exec->count("--images-dir") == 0 &&
              exec->count("--userns") == 0 && exec->count("--gvisor-platform") == 0;
  if (o.backend == "gvisor" && (o.userNamespace || !o.spec.image.empty() || o.spec.diskMb > 0)) {
    std::fprintf(stderr,
                 "kiln sandbox: --userns, --image and --disk-mb are for the namespace "
                 "backend (gVisor has a kernel of its own)\n");
    return 2;
  }
  if (!o.spec.allowHosts.empty() && o.spec.network != "allowlist") {
    std::fprintf(stderr, "kiln sandbox: --allow-host needs --network allowlist\n");
    return 2;
  }
  return runExec(o);
}

}  // namespace kiln::sandbox

// `kiln sandbox exec`: runs one command in a fresh sandbox (namespace or gvisor backend), streams
// its output and exits with its exit code. For operators and tests.
#include "sandbox/cli.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>

#include "node/node.h"
#include "runtime/client.h"
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

Result<runtime::ExecResult> execIn(Sandbox& sb, const ExecOptions& o) {
  std::string cmd;
  for (const auto& arg : o.command) cmd += (cmd.empty() ? "" : " ") + shellQuote(arg);
  runtime::ExecRequest req;
  req.cmd = cmd;
  req.timeoutMs = o.timeoutMs > 0 ? o.timeoutMs : 24 * 3600 * 1000;
  asio::io_context ioc;
  runtime::RuntimeClient client(ioc.get_executor(), sb.runtimeSocket(), sb.runtimeToken());
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

int runExec(ExecOptions& o) {
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
    Result<runtime::ExecResult> r = execIn(**sb, o);
    auto breach = (*sb)->limitBreach();
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
  exec->add_option("command", o.command, "command and arguments (after --)")->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
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

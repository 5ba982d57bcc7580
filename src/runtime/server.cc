#include "runtime/server.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "common/no_throw.h"
#include "runtime/egress_forwarder.h"
#include "runtime/router.h"
#include "sandbox/ns/seccomp.h"

namespace kiln::runtime {
namespace {

struct Args {
  int listenFd = -1;
  std::string socketPath;
  std::string egressSocket;  // network "allowlist": the egress proxy's socket
  std::string preload;       // LD_PRELOAD of every command (gVisor: its compat library)
  // --forward PORT:PATH: 127.0.0.1:PORT inside relayed to the unix socket PATH (an agent CLI's
  // sandbox: kiln's model gateway and its ACP client on the host).
  std::vector<std::pair<uint16_t, std::string>> forwards;
  RuntimeConfig config;
};

Result<Args> parseArgs(int argc, char** argv) {
  Args a;
  a.config.home = getenv("HOME") ? getenv("HOME") : "/root";
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "--jail") {
      a.config.jail.enabled = true;
      continue;
    }
    if (flag == "--await-workspace") {
      a.config.awaitWorkspace = true;
      continue;
    }

    if (i + 1 >= argc) return invalidArgument("missing value for " + flag);
    std::string v = argv[++i];
    if (flag == "--listen-fd") {
      a.listenFd = std::atoi(v.c_str());
    } else if (flag == "--socket") {
      a.socketPath = v;
    } else if (flag == "--preload") {
      a.preload = v;
    } else if (flag == "--egress-socket") {
      a.egressSocket = v;
    } else if (flag == "--forward") {
      const size_t colon = v.find(':');
      const int port = colon == std::string::npos ? 0 : std::atoi(v.substr(0, colon).c_str());
      if (port <= 0 || port > 65535 || colon + 1 >= v.size()) {
        return invalidArgument("--forward wants PORT:PATH, got " + v);
      }
      a.forwards.emplace_back(static_cast<uint16_t>(port), v.substr(colon + 1));
    } else if (flag == "--workspace") {
      a.config.workspace = v;
    } else if (flag == "--workspace-source") {
      a.config.workspaceSource = v;
    } else if (flag == "--home") {
      a.config.home = v;
    } else if (flag == "--bash") {
      a.config.bashPaths = {v};
    } else if (flag == "--uid") {
      a.config.jail.uid = std::atoi(v.c_str());
    } else if (flag == "--gid") {
      a.config.jail.gid = std::atoi(v.c_str());
    } else {
      return invalidArgument("unknown flag " + flag);
    }
  }
  if ((a.listenFd < 0) == a.socketPath.empty()) {
    return invalidArgument("exactly one of --listen-fd N or --socket PATH is required");
  }
  return a;
}

Result<int> bindSocket(const std::string& path) {
  // Bound under a temporary name and renamed once listening: a client that sees the path
  // never meets ECONNREFUSED in the moment between bind() and listen().
  const std::string tmp = path + ".tmp";
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (tmp.size() >= sizeof(addr.sun_path)) return invalidArgument("socket path too long");
  std::memcpy(addr.sun_path, tmp.c_str(), tmp.size() + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errnoStatus("socket", errno);
  unlink(tmp.c_str());
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd, 128) != 0 ||
      rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    close(fd);
    unlink(tmp.c_str());
    return errnoStatus("bind " + path, err);
  }
  return fd;
}

// The token from the environment, wiped in place: /proc/<pid>/environ reads the original
// environment block, which unsetenv() alone leaves as it was.
std::string takeToken() {
  char* v = getenv(kTokenEnv);
  if (!v) return "";
  std::string token(v);
  std::memset(v, 0, std::strlen(v));
  unsetenv(kTokenEnv);
  return token;
}

// Compares in time independent of where the strings differ.
bool sameSecret(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() != b.size();
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) diff |= a[i] ^ b[i];
  return diff == 0;
}

bool authorized(const http::request<http::string_body>& req, const std::string& token) {
  if (token.empty()) return true;
  auto header = req[http::field::authorization];
  const std::string_view given(header.data(), header.size());
  constexpr std::string_view kScheme = "Bearer ";
  return given.starts_with(kScheme) && sameSecret(given.substr(kScheme.size()), token);
}

void serveConnection(Router& router, const std::string& token, int fd) {
  asio::io_context ioc;
  Router::Socket sock(ioc);
  boost::system::error_code ec;
  sock.assign(asio::local::stream_protocol(), fd, ec);
  if (ec) {
    close(fd);
    return;
  }
  beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(256 << 20);
    http::read_header(sock, buffer, parser, ec);
    if (!ec && !authorized(parser.get(), token)) {
      writeError(sock, Status(Code::kUnauthenticated, "this sandbox's runtime token is required"),
                 false);
      return;
    }
    if (!ec && !parser.is_done()) http::read(sock, buffer, parser, ec);
    if (ec) {
      if (ec == http::error::body_limit) {
        writeError(sock, Status(Code::kTooLarge, "request body too large"), false);
      }
      return;
    }
    if (!router.handle(sock, parser.get())) return;
  }
}

}  // namespace

int runtimeMain(int argc, char** argv) {
  Result<Args> args = parseArgs(argc, argv);
  if (!args) {
    std::fprintf(stderr, "kiln runtime: %s\n", args.status().message().c_str());
    return 2;
  }
  const std::string token = takeToken();
  // The namespace backend execs us with every signal blocked (sandbox/ns/contain.cc).
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  // A client that disconnects mid-stream must not kill PID 1.
  signal(SIGPIPE, SIG_IGN);
  // Orphans of commands come to us (and are reaped, reported on /events) even when we are not
  // PID 1 (a runtime run outside a sandbox).
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  if (args->config.jail.enabled) {
    Result<std::vector<sock_filter>> prog = sandbox::compileSeccompPolicy();
    if (!prog) {
      std::fprintf(stderr, "kiln runtime: %s\n", prog.status().message().c_str());
      return 1;
    }
    args->config.jail.seccomp = std::move(prog).value();
    // A memory bomb in a command must not take PID 1 (and the whole sandbox) down with it.
    int adj = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (adj >= 0) {
      (void)!write(adj, "-1000", 5);
      close(adj);
    }
  }
  if (!args->egressSocket.empty()) {
    // Before serving: a command may use the proxy as soon as the contract answers.
    Status st = startEgressForwarder(args->egressSocket);
    if (!st) {
      std::fprintf(stderr, "kiln runtime: %s\n", st.message().c_str());
      return 1;
    }
    // The proxy's CA bundle sits beside its socket when the job has proxy-mode secrets.
    const std::string dir = args->egressSocket.substr(0, args->egressSocket.rfind('/'));
    const std::string ca = dir + "/ca.pem";
    args->config.jail.extraEnv =
        egressProxyEnv(kEgressProxyPort, access(ca.c_str(), R_OK) == 0 ? ca : "");
  }
  if (!args->preload.empty()) args->config.jail.extraEnv.push_back("LD_PRELOAD=" + args->preload);
  for (const auto& [port, socket] : args->forwards) {
    Status st = startEgressForwarder(socket, port);
    if (!st) {
      std::fprintf(stderr, "kiln runtime: %s\n", st.message().c_str());
      return 1;
    }
  }
  Result<std::unique_ptr<Router>> router = Router::create(args->config);
  if (!router) {
    std::fprintf(stderr, "kiln runtime: %s\n", router.status().message().c_str());
    return 1;
  }
  // Only now does a client's connect() succeed (a --listen-fd's owner waits for /health): the
  // router has recorded the idle workspace's identity (--await-workspace) before any attach.
  int listenFd = args->listenFd;
  if (listenFd >= 0) {
    fcntl(listenFd, F_SETFD, FD_CLOEXEC);
  } else {
    Result<int> fd = bindSocket(args->socketPath);
    if (!fd) {
      std::fprintf(stderr, "kiln runtime: %s\n", fd.status().message().c_str());
      return 1;
    }
    listenFd = *fd;
  }
  for (;;) {
    int fd = accept4(listenFd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE) {
        usleep(10'000);  // out of fds: back off instead of spinning
        continue;
      }
      std::fprintf(stderr, "kiln runtime: accept: %s\n", std::strerror(errno));
      return 1;
    }
    try {
      std::thread([r = router->get(), token, fd] {
        (void)callNoThrow("runtime: connection", [&] { serveConnection(*r, token, fd); });
      }).detach();
    } catch (const std::system_error&) {
      // No thread to be had (a fork bomb holds every pid of the sandbox): drop this
      // connection, never PID 1.
      close(fd);
      usleep(10'000);
    }
  }
}

}  // namespace kiln::runtime

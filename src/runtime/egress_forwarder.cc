#include "runtime/egress_forwarder.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <system_error>
#include <thread>

namespace kiln::runtime {
namespace {

// Blocking sockets, poll() and a thread per connection, like the runtime's own server: the
// Asio (epoll) relay this replaces stalled under gVisor's kernel (the gvisor backend), where the
// proxy's socket is a host socket; a sandbox's egress is a handful of connections at a time.
constexpr int kIdleMs = 10 * 60 * 1000;  // as the host proxy's tunnels

int connectUnix(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return -1;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int err = errno;
    close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

bool writeAll(int fd, const char* data, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, data, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    data += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// Copies both ways until both sides finished sending, or neither sent anything for kIdleMs.
void relay(int a, int b) {
  pollfd fds[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
  bool open[2] = {true, true};
  char buf[65536];
  while (open[0] || open[1]) {
    for (int i = 0; i < 2; ++i) fds[i].events = open[i] ? POLLIN : 0;
    int n = poll(fds, 2, kIdleMs);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // idle, or broken
    for (int i = 0; i < 2; ++i) {
      if (!open[i] || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t r = recv(fds[i].fd, buf, sizeof buf, 0);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        open[i] = false;
        shutdown(fds[1 - i].fd, SHUT_WR);
        continue;
      }
      if (!writeAll(fds[1 - i].fd, buf, static_cast<size_t>(r))) return;
    }
  }
}

void serve(int client, std::string proxySocket) {
  int upstream = connectUnix(proxySocket);
  if (upstream < 0) {
    std::fprintf(stderr, "kiln runtime: forward to %s: %s\n", proxySocket.c_str(),
                 std::strerror(errno));
  } else {
    relay(client, upstream);
    close(upstream);
  }
  close(client);
}

}  // namespace

Status startEgressForwarder(const std::string& proxySocket, uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errnoStatus("egress forwarder: socket", errno);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd, 128) != 0) {
    int err = errno;
    close(fd);
    return errnoStatus("egress forwarder: listen on 127.0.0.1:" + std::to_string(port), err);
  }
  // Lives as long as the runtime process (PID 1 of the sandbox).
  std::thread([fd, proxySocket] {
    for (;;) {
      int client = accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) {
        if (errno != EINTR) usleep(50'000);  // out of fds: do not spin
        continue;
      }
      try {
        std::thread(serve, client, proxySocket).detach();
      } catch (const std::system_error&) {
        close(client);  // no thread to be had (a fork bomb holds every pid)
        usleep(10'000);
      }
    }
  }).detach();
  return Status::ok();
}

std::vector<std::string> egressProxyEnv(uint16_t port, const std::string& caBundle) {
  const std::string url = "http://127.0.0.1:" + std::to_string(port);
  std::vector<std::string> env;
  for (const char* name : {"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"}) {
    env.push_back(std::string(name) + "=" + url);
  }
  env.push_back("NO_PROXY=localhost,127.0.0.1");
  env.push_back("no_proxy=localhost,127.0.0.1");
  if (!caBundle.empty()) {
    for (const char* name : {"SSL_CERT_FILE", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE",
                             "GIT_SSL_CAINFO", "NODE_EXTRA_CA_CERTS"}) {
      env.push_back(std::string(name) + "=" + caBundle);
    }
  }
  return env;
}

}  // namespace kiln::runtime

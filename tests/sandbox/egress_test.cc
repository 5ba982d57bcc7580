// Network "allowlist" end to end: a real sandbox (namespaces, the real runtime as PID 1) whose
// commands reach a real HTTP server on the host only through the egress proxy. Python's urllib
// inside honours the proxy variables the runtime sets.
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/wait.h>

#include "egress_upstream.h"
#include "sandbox/ns/layout.h"
#include "sandbox_fixture.h"
#include "support/temp_dir.h"

namespace kiln::sandbox::testing {
namespace {

// Prints "<status> <body>" for a URL fetched with urllib (proxy from the environment).
constexpr const char* kFetchPy = R"(import sys, urllib.request, urllib.error
try:
    r = urllib.request.urlopen(sys.argv[1], timeout=20)
    print(r.status, r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode().strip())
except Exception as e:
    print("ERROR", type(e).__name__, e)
)";

// Connects straight to HOST PORT, no proxy: prints CONNECTED or FAILED <error>.
constexpr const char* kDirectPy = R"(import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.settimeout(5)
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    print("CONNECTED")
except Exception as e:
    print("FAILED", type(e).__name__)
)";

// A raw CONNECT through the in-sandbox proxy port: prints the status, then the echo of "ping"
// (for 200) or the refusal body.
constexpr const char* kConnectPy = R"(import socket, sys
s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (sys.argv[1], sys.argv[1])).encode())
data = b""
while b"\r\n\r\n" not in data:
    c = s.recv(4096)
    if not c:
        break
    data += c
head, _, rest = data.partition(b"\r\n\r\n")
status = head.split(b" ")[1].decode() if head else "none"
print(status)
if status == "200":
    s.sendall(b"ping through the tunnel")
    got = rest
    while len(got) < 23:
        got += s.recv(100)
    print(got.decode())
else:
    while True:
        c = s.recv(4096)
        if not c:
            break
        rest += c
    print(rest.decode().strip())
)";

// The first up, non-loopback IPv4 address of the host, if any.
std::string hostAddress() {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return "";
  std::string out;
  for (ifaddrs* i = list; i && out.empty(); i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || (i->ifa_flags & IFF_LOOPBACK) ||
        !(i->ifa_flags & IFF_UP)) {
      continue;
    }
    char buf[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, buf, sizeof buf);
    out = buf;
  }
  freeifaddrs(list);
  return out;
}

class SandboxEgressTest : public BackendSandboxTest {
 protected:
  // 127.0.0.2 is the host's loopback but not in NO_PROXY, so urllib goes through the proxy.
  std::string httpHost() const { return "127.0.0.2:" + std::to_string(http_.port()); }
  Sandbox* createWithScripts(SandboxSpec spec) {
    spec.workspaceDir = newWorkspace();
    std::ofstream(spec.workspaceDir + "/fetch.py") << kFetchPy;
    std::ofstream(spec.workspaceDir + "/direct.py") << kDirectPy;
    std::ofstream(spec.workspaceDir + "/connect.py") << kConnectPy;
    return create(spec);
  }
  Sandbox* allowlisted() {
    SandboxSpec spec;
    spec.network = "allowlist";
    spec.allowHosts = {httpHost(), "169.254.169.254", "localhost:" + std::to_string(echo_.port())};
    return createWithScripts(spec);
  }

  TestUpstream http_{TestUpstream::Mode::kHttp, "0.0.0.0"};
  TestUpstream echo_{TestUpstream::Mode::kEcho};
};

TEST_P(SandboxEgressTest, ListedHostIsReachableThroughTheProxy) {
  Sandbox* sb = allowlisted();
  ASSERT_NE(sb, nullptr);
  EXPECT_EQ(run(sb, "python3 fetch.py http://" + httpHost() + "/from-inside"),
            "200 hello /from-inside\n");
  EXPECT_EQ(run(sb, "env | grep -i _proxy= | sort"),
            "HTTPS_PROXY=http://127.0.0.1:3128\nHTTP_PROXY=http://127.0.0.1:3128\n"
            "NO_PROXY=localhost,127.0.0.1\nhttp_proxy=http://127.0.0.1:3128\n"
            "https_proxy=http://127.0.0.1:3128\nno_proxy=localhost,127.0.0.1\n");
}

TEST_P(SandboxEgressTest, UnlistedHostIsRefusedWith403) {
  Sandbox* sb = allowlisted();
  ASSERT_NE(sb, nullptr);
  std::string out = run(sb, "python3 fetch.py http://example.com/");
  EXPECT_EQ(out.rfind("403 kiln egress proxy: host example.com port 80 is not in this "
                      "sandbox's allowlist",
                      0),
            0u)
      << out;
  // The same host on an unlisted port.
  out = run(sb, "python3 fetch.py http://127.0.0.2:" + std::to_string(echo_.port()) + "/");
  EXPECT_EQ(out.rfind("403 ", 0), 0u) << out;
}

TEST_P(SandboxEgressTest, MetadataAddressIsRefusedEvenWhenListed) {
  Sandbox* sb = allowlisted();
  ASSERT_NE(sb, nullptr);
  std::string out = run(sb, "python3 fetch.py http://169.254.169.254/latest/meta-data/");
  EXPECT_EQ(out.rfind("403 ", 0), 0u) << out;
  EXPECT_NE(out.find("metadata"), std::string::npos) << out;
}

TEST_P(SandboxEgressTest, NoDirectRouteOnlyTheProxy) {
  Sandbox* sb = allowlisted();
  ASSERT_NE(sb, nullptr);
  std::string port = std::to_string(http_.port());
  // The sandbox's 127.0.0.0/8 is its own loopback: nothing of the host listens there.
  EXPECT_EQ(run(sb, "python3 direct.py 127.0.0.2 " + port).rfind("FAILED", 0), 0u);
  if (std::string addr = hostAddress(); !addr.empty()) {
    EXPECT_EQ(run(sb, "python3 direct.py " + addr + " " + port).rfind("FAILED", 0), 0u) << addr;
  }
  // Without the proxy variables, urllib has no way out either.
  EXPECT_EQ(run(sb, "env -u http_proxy -u HTTP_PROXY python3 fetch.py http://" + httpHost() + "/")
                .rfind("ERROR", 0),
            0u);
  // The proxy's unix socket is for the runtime, not for the agent's uid.
  const std::string dir = isGvisor() ? "/run/kiln/net" : "/run/kiln";
  EXPECT_EQ(run(sb, "test -r " + dir + "/px.sock -o -x " + dir + " && echo OPEN || echo CLOSED"),
            "CLOSED\n");
}

TEST_P(SandboxEgressTest, ConnectTunnelsToListedHostAndRefusesOthers) {
  Sandbox* sb = allowlisted();
  ASSERT_NE(sb, nullptr);
  EXPECT_EQ(run(sb, "python3 connect.py localhost:" + std::to_string(echo_.port())),
            "200\nping through the tunnel\n");
  std::string out = run(sb, "python3 connect.py example.org:443");
  EXPECT_EQ(out.rfind("403\nkiln egress proxy: host example.org port 443 is not", 0), 0u) << out;
  out = run(sb, "python3 connect.py 169.254.169.254:80");
  EXPECT_EQ(out.rfind("403\n", 0), 0u) << out;
}

TEST_P(SandboxEgressTest, NetworkNoneHasNoProxyAtAll) {
  Sandbox* sb = createWithScripts({});
  ASSERT_NE(sb, nullptr);
  EXPECT_EQ(run(sb, "env | grep -ci proxy || true"), "0\n");
  EXPECT_EQ(run(sb, "python3 direct.py 127.0.0.1 3128").rfind("FAILED", 0), 0u);
  EXPECT_EQ(run(sb, "HTTP_PROXY=http://127.0.0.1:3128 python3 fetch.py http://" + httpHost() + "/")
                .rfind("ERROR", 0),
            0u);
  // (gVisor has /run/kiln for the runtime's own files, never the proxy's socket dir.)
  EXPECT_EQ(run(sb, std::string("test -e ") + (isGvisor() ? "/run/kiln/net" : "/run/kiln") +
                        " && echo PRESENT || echo ABSENT"),
            "ABSENT\n");
}

TEST_P(SandboxEgressTest, BadAllowlistEntryFailsCreation) {
  SandboxSpec spec;
  spec.id = uniqueId("bad");
  spec.workspaceDir = newWorkspace();
  spec.network = "allowlist";
  spec.allowHosts = {"ok.example.com", "not a host"};
  auto sb = backend_->create(spec);
  ASSERT_FALSE(sb.isOk());
  EXPECT_EQ(sb.status().code(), Code::kInvalidArgument);
  EXPECT_NE(sb.status().message().find("not a host"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(runDirFor(state_) + "/" + spec.id + ".net"));
  spec.network = "bridge";
  EXPECT_EQ(backend_->create(spec).status().code(), Code::kInvalidArgument);
}

TEST_P(SandboxEgressTest, DestroyClosesTheSandboxesProxySocket) {
  Sandbox* sb = allowlisted();
  ASSERT_NE(sb, nullptr);
  const std::string netDir = runDirFor(state_) + "/" + sb->id() + ".net";
  ASSERT_TRUE(std::filesystem::exists(netDir + "/px.sock"));
  ASSERT_TRUE(sb->destroy().isOk());
  EXPECT_FALSE(std::filesystem::exists(netDir));
}

TEST_P(SandboxEgressTest, CliAllowHostFlag) {
  std::string ws = newWorkspace();
  std::ofstream(ws + "/fetch.py") << kFetchPy;
  std::string state = tempDir("cli");
  dirs_.push_back(state);
  std::string base = std::string(KILN_BINARY) + " sandbox exec --backend " + GetParam() +
                     " --state-dir " + state + " --workspace " + ws;
  std::string out;
  int rc = kiln::testing::shell(base + " --network allowlist --allow-host " + httpHost() +
                                    " -- python3 fetch.py http://" + httpHost() + "/cli",
                                &out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(out, "200 hello /cli\n");
  out.clear();
  rc = kiln::testing::shell(base + " --allow-host " + httpHost() + " -- true", &out);
  EXPECT_EQ(rc, 2);
  EXPECT_NE(out.find("--allow-host needs --network allowlist"), std::string::npos) << out;
}

// The runtime reaches the proxy's socket when it is root of its own user namespace: the socket
// dir, under kiln's 0700 run dir, comes in as a detached mount.
// Cases of the namespace backend only: each says why it does not apply to gVisor.
class NsSandboxEgressTest : public SandboxEgressTest {};

TEST_P(NsSandboxEgressTest, CliAllowHostWithAUserNamespace) {
  // Namespace backend only: --userns is the namespace backend's.
  std::string ws = newWorkspace();
  std::ofstream(ws + "/fetch.py") << kFetchPy;
  std::string state = tempDir("cliu");
  dirs_.push_back(state);
  std::string out;
  int rc =
      kiln::testing::shell(std::string(KILN_BINARY) + " sandbox exec --userns --state-dir " +
                               state + " --workspace " + ws + " --network allowlist --allow-host " +
                               httpHost() + " -- python3 fetch.py http://" + httpHost() + "/userns",
                           &out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(out, "200 hello /userns\n");
}

INSTANTIATE_TEST_SUITE_P(Backends, SandboxEgressTest, ::testing::ValuesIn(kBackends),
                         backendTestName);
INSTANTIATE_TEST_SUITE_P(Namespace, NsSandboxEgressTest, ::testing::Values("namespace"),
                         backendTestName);

}  // namespace
}  // namespace kiln::sandbox::testing

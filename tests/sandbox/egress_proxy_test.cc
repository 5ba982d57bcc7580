// The egress proxy on the host, without a sandbox: allowlist rules, request-target parsing, and
// the real proxy on a unix socket in front of real TCP upstreams.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "egress_upstream.h"
#include "sandbox/egress/allowlist.h"
#include "sandbox/egress/proxy.h"
#include "sandbox/egress/target.h"
#include "sandbox_fixture.h"

namespace kiln::sandbox::testing {
namespace {

using egress::Allowlist;
using egress::isHostLocalAddress;
using egress::isMetadataAddress;
using egress::normalizeHost;
using egress::parseProxyTarget;
using egress::Verdict;

Allowlist allowlistOf(const std::vector<std::string>& entries) {
  auto a = Allowlist::parse(entries);
  EXPECT_TRUE(a.isOk()) << a.status().toString();
  return a.isOk() ? std::move(a).value() : Allowlist();
}

TEST(EgressAllowlistTest, ExactNamesWildcardsAndPorts) {
  Allowlist a = allowlistOf(
      {"Example.COM", "*.pypi.org", "api.github.com:443", "10.1.2.3:8080", "[::1]:9000"});
  EXPECT_TRUE(a.checkHost("example.com", 80).allowed);
  EXPECT_TRUE(a.checkHost("EXAMPLE.com.", 443).allowed);
  EXPECT_FALSE(a.checkHost("www.example.com", 80).allowed);
  EXPECT_TRUE(a.checkHost("files.pypi.org", 443).allowed);
  EXPECT_TRUE(a.checkHost("a.b.pypi.org", 443).allowed);
  EXPECT_FALSE(a.checkHost("pypi.org", 443).allowed) << "a wildcard covers subdomains only";
  EXPECT_FALSE(a.checkHost("evilpypi.org", 443).allowed);
  EXPECT_TRUE(a.checkHost("api.github.com", 443).allowed);
  EXPECT_FALSE(a.checkHost("api.github.com", 22).allowed);
  EXPECT_TRUE(a.checkHost("10.1.2.3", 8080).allowed);
  EXPECT_FALSE(a.checkHost("10.1.2.3", 80).allowed);
  EXPECT_TRUE(a.checkHost("::1", 9000).allowed);
  EXPECT_TRUE(a.checkHost("[0:0::1]", 9000).allowed);
  Verdict v = a.checkHost("other.net", 443);
  EXPECT_FALSE(v.allowed);
  EXPECT_NE(v.reason.find("not in this sandbox's allowlist"), std::string::npos) << v.reason;
}

TEST(EgressAllowlistTest, IpLiteralsOnlyWhenListed) {
  Allowlist a = allowlistOf({"*.example.com", "localhost"});
  EXPECT_FALSE(a.checkHost("93.184.216.34", 80).allowed);
  EXPECT_FALSE(a.checkHost("127.0.0.1", 80).allowed);
  // Numbers that getaddrinfo() would read as IPv4 addresses are not names.
  for (const char* sneaky : {"127.1", "2130706433", "0x7f.1", "a.0x1"}) {
    EXPECT_FALSE(allowlistOf({"*.example.com"}).checkHost(sneaky, 80).allowed) << sneaky;
    EXPECT_FALSE(Allowlist::parse({sneaky}).isOk()) << sneaky;
  }
}

TEST(EgressAllowlistTest, ResolvedAddressesAreCheckedToo) {
  Allowlist a = allowlistOf({"*.example.com", "localhost", "db.example.com:5432"});
  auto addrs = [](std::initializer_list<const char*> l) {
    std::vector<asio::ip::address> out;
    for (const char* s : l) out.push_back(asio::ip::make_address(s));
    return out;
  };
  EXPECT_TRUE(a.checkResolved("www.example.com", 443, addrs({"93.184.216.34"})).allowed);
  // DNS pointing a wildcard name at the host itself, or at the metadata service.
  Verdict v = a.checkResolved("x.example.com", 443, addrs({"93.184.216.34", "127.0.0.1"}));
  EXPECT_FALSE(v.allowed);
  EXPECT_NE(v.reason.find("host-local"), std::string::npos) << v.reason;
  v = a.checkResolved("x.example.com", 80, addrs({"169.254.169.254"}));
  EXPECT_FALSE(v.allowed);
  EXPECT_NE(v.reason.find("metadata"), std::string::npos) << v.reason;
  EXPECT_FALSE(a.checkResolved("x.example.com", 80, addrs({"::ffff:169.254.169.254"})).allowed);
  // Exactly listed names may be local, never metadata.
  EXPECT_TRUE(a.checkResolved("localhost", 8080, addrs({"::1", "127.0.0.1"})).allowed);
  EXPECT_TRUE(a.checkResolved("db.example.com", 5432, addrs({"127.0.0.1"})).allowed);
  EXPECT_FALSE(a.checkResolved("localhost", 80, addrs({"fe80::1"})).allowed);
}

TEST(EgressAllowlistTest, MetadataRefusedEvenWhenListed) {
  Allowlist a = allowlistOf({"169.254.169.254", "metadata.google.internal", "100.100.100.200",
                             "[fd00:ec2::254]", "[::ffff:169.254.169.254]"});
  for (const char* h : {"169.254.169.254", "metadata.google.internal", "METADATA.google.internal.",
                        "100.100.100.200", "fd00:ec2::254", "::ffff:169.254.169.254"}) {
    Verdict v = a.checkHost(h, 80);
    EXPECT_FALSE(v.allowed) << h;
    EXPECT_NE(v.reason.find("always refused"), std::string::npos) << h << ": " << v.reason;
  }
}

TEST(EgressAllowlistTest, AddressClasses) {
  auto addr = [](const char* s) { return asio::ip::make_address(s); };
  for (const char* m : {"169.254.169.254", "169.254.0.1", "100.100.100.200", "fe80::1",
                        "fd00:ec2::254", "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe"}) {
    EXPECT_TRUE(isMetadataAddress(addr(m))) << m;
  }
  for (const char* ok : {"93.184.216.34", "10.0.0.1", "100.100.100.201", "2001:db8::1", "::1"}) {
    EXPECT_FALSE(isMetadataAddress(addr(ok))) << ok;
  }
  for (const char* l : {"127.0.0.1", "127.9.9.9", "0.0.0.0", "::1", "::", "::ffff:127.0.0.1"}) {
    EXPECT_TRUE(isHostLocalAddress(addr(l))) << l;
  }
  EXPECT_FALSE(isHostLocalAddress(addr("192.168.1.1")));
}

TEST(EgressAllowlistTest, BadEntriesAreRejected) {
  for (const char* bad : {"", "*.", "*.10.0.0.1", "host:0", "host:99999", "host:abc", "ho st",
                          "[::1", "a..b", "[example.com]", "fe80::1%eth0"}) {
    EXPECT_FALSE(Allowlist::parse({bad}).isOk()) << bad;
  }
  EXPECT_EQ(normalizeHost("WWW.Example.Org."), "www.example.org");
  EXPECT_EQ(normalizeHost("[::FFFF:1.2.3.4]"), "::ffff:1.2.3.4");
  EXPECT_EQ(normalizeHost("::1"), "::1");
}

TEST(EgressTargetTest, ConnectAndAbsoluteUris) {
  auto c = parseProxyTarget(true, "example.com:443");
  ASSERT_TRUE(c.isOk());
  EXPECT_EQ(c->host, "example.com");
  EXPECT_EQ(c->port, 443);
  auto v6 = parseProxyTarget(true, "[::1]:8443");
  ASSERT_TRUE(v6.isOk());
  EXPECT_EQ(v6->host, "::1");
  auto g = parseProxyTarget(false, "http://Example.com:8080/a/b?c=d#frag");
  ASSERT_TRUE(g.isOk());
  EXPECT_EQ(g->host, "Example.com");
  EXPECT_EQ(g->port, 8080);
  EXPECT_EQ(g->originForm, "/a/b?c=d");
  EXPECT_EQ(g->hostHeader, "Example.com:8080");
  auto bare = parseProxyTarget(false, "http://example.com?q");
  ASSERT_TRUE(bare.isOk());
  EXPECT_EQ(bare->port, 80);
  EXPECT_EQ(bare->originForm, "/?q");
  EXPECT_EQ(bare->hostHeader, "example.com");
  for (const char* bad : {"/local/path", "https://example.com/", "ftp://x/",
                          "http://user@evil.com/", "http:///x", "http://a:b:c/"}) {
    EXPECT_FALSE(parseProxyTarget(false, bad).isOk()) << bad;
  }
  for (const char* bad : {"example.com", "example.com:", ":443", "[::1]", "a:0"}) {
    EXPECT_FALSE(parseProxyTarget(true, bad).isOk()) << bad;
  }
}

// The real proxy on a unix socket, with real TCP upstreams on 127.0.0.1.
class EgressProxyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = tempDir("px");
    ASSERT_FALSE(dir_.empty());
    socket_ = dir_ + "/px.sock";
  }
  void TearDown() override {
    listener_.reset();
    proxy_.reset();
    std::filesystem::remove_all(dir_);
  }
  void listen(const std::vector<std::string>& allow) {
    auto l = proxy_->listen(socket_, "test", allowlistOf(allow));
    ASSERT_TRUE(l.isOk()) << l.status().toString();
    listener_ = std::move(l).value();
  }
  std::string exchange(const std::string& request) {
    UnixClient c(socket_);
    EXPECT_TRUE(c.connected());
    c.send(request);
    return c.readAll();
  }
  std::string get(const std::string& url) {
    return exchange("GET " + url + " HTTP/1.1\r\nHost: ignored\r\nConnection: keep-alive\r\n\r\n");
  }

  std::string dir_, socket_;
  std::unique_ptr<egress::EgressProxy> proxy_ = egress::newStandaloneEgressProxy();
  std::unique_ptr<egress::EgressListener> listener_;
  TestUpstream http_{TestUpstream::Mode::kHttp};
  TestUpstream echo_{TestUpstream::Mode::kEcho};
};

std::string hostPort(uint16_t port) { return "127.0.0.1:" + std::to_string(port); }

TEST_F(EgressProxyTest, ForwardsPlainHttpToListedHostWithOriginFormTarget) {
  listen({hostPort(http_.port())});
  std::string r = get("http://" + hostPort(http_.port()) + "/some/path?x=1");
  EXPECT_EQ(r.rfind("HTTP/1.0 200 OK", 0), 0u) << r;
  EXPECT_NE(r.find("hello /some/path?x=1"), std::string::npos) << r;
}

TEST_F(EgressProxyTest, RefusesUnlistedHostWith403AndAClearBody) {
  listen({hostPort(http_.port())});
  std::string r = get("http://127.0.0.1:" + std::to_string(echo_.port()) + "/");
  EXPECT_EQ(r.rfind("HTTP/1.1 403 Forbidden", 0), 0u) << r;
  EXPECT_NE(r.find("kiln egress proxy: host 127.0.0.1 port " + std::to_string(echo_.port()) +
                   " is not in this sandbox's allowlist"),
            std::string::npos)
      << r;
  r = exchange("CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 403 Forbidden", 0), 0u) << r;
}

TEST_F(EgressProxyTest, RefusesMetadataEvenWhenListed) {
  listen({"169.254.169.254", "metadata.google.internal"});
  std::string r = get("http://169.254.169.254/latest/meta-data/");
  EXPECT_EQ(r.rfind("HTTP/1.1 403", 0), 0u) << r;
  EXPECT_NE(r.find("metadata"), std::string::npos) << r;
  r = exchange("CONNECT metadata.google.internal:80 HTTP/1.1\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 403", 0), 0u) << r;
}

TEST_F(EgressProxyTest, ConnectTunnelsBytesBothWays) {
  listen({"localhost:" + std::to_string(echo_.port())});
  UnixClient c(socket_);
  ASSERT_TRUE(c.connected());
  // The first tunnel bytes ride in the same write as the header (a TLS client may do that).
  c.send("CONNECT localhost:" + std::to_string(echo_.port()) + " HTTP/1.1\r\n\r\nearly");
  EXPECT_EQ(c.readHead(), "HTTP/1.1 200 Connection established\r\n\r\n");
  EXPECT_EQ(c.readSome(5), "early");
  for (int i = 0; i < 3; ++i) {
    std::string msg = "ping " + std::to_string(i) + std::string(10000 * i, 'x');
    ASSERT_TRUE(c.send(msg));
    EXPECT_EQ(c.readSome(msg.size()), msg);
  }
  // Half-close reaches the upstream, whose close comes back as EOF.
  c.shutdownWrite();
  EXPECT_EQ(c.readAll(), "");
}

TEST_F(EgressProxyTest, OversizedPlainBodyIs413) {
  listen({hostPort(http_.port())});
  std::string r = exchange("POST http://" + hostPort(http_.port()) +
                           "/up HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 413 Payload Too Large", 0), 0u) << r;
  r = exchange("POST http://" + hostPort(http_.port()) +
               "/up HTTP/1.1\r\nContent-Length: 5\r\n\r\nsmall");
  EXPECT_NE(r.find("hello /up"), std::string::npos) << r;
}

TEST_F(EgressProxyTest, UnreachableUpstreamIs502) {
  // A port nobody listens on: bind one, then close it.
  uint16_t dead;
  {
    asio::io_context ioc;
    asio::ip::tcp::acceptor a(ioc, {asio::ip::make_address("127.0.0.1"), 0});
    dead = a.local_endpoint().port();
  }
  listen({hostPort(dead)});
  std::string r = get("http://" + hostPort(dead) + "/");
  EXPECT_EQ(r.rfind("HTTP/1.1 502 Bad Gateway", 0), 0u) << r;
}

TEST_F(EgressProxyTest, GarbageNeverKillsTheProxy) {
  listen({hostPort(http_.port())});
  std::mt19937 rng(42);
  std::vector<std::string> inputs = {
      "",
      "\r\n\r\n",
      "GET\r\n\r\n",
      "GET / HTTP/1.1\r\n\r\n",
      "CONNECT\r\n\r\n",
      "CONNECT :0 HTTP/1.1\r\n\r\n",
      "GET http://[::1 HTTP/1.1\r\n\r\n",
      "GET http://" + hostPort(http_.port()) + "/ HTTP/9.9\r\n\r\n",
      "POST http://" + hostPort(http_.port()) + "/ HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n",
      "GET http://x/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
      "GET http://x/ HTTP/1.1\r\nX: " + std::string(64 * 1024, 'a') + "\r\n\r\n",
      std::string("\0\0\0\xff\xfe garbage\r\n\r\n", 20)};
  for (int i = 0; i < 30; ++i) {
    std::string junk(rng() % 3000, '\0');
    for (char& ch : junk) ch = static_cast<char>(rng());
    inputs.push_back(junk);
  }
  std::vector<std::thread> threads;
  for (const auto& in : inputs) {
    threads.emplace_back([this, in] {
      auto t0 = std::chrono::steady_clock::now();
      UnixClient c(socket_);
      c.send(in);
      c.shutdownWrite();
      std::string r = c.readAll();
      EXPECT_TRUE(r.empty() || r.rfind("HTTP/1.", 0) == 0) << r.substr(0, 200);
      // Every connection ends promptly: nothing is left hanging until a timeout.
      EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5)) << in.substr(0, 80);
    });
  }
  // Clients that connect and vanish mid-request.
  for (int i = 0; i < 20; ++i) {
    UnixClient c(socket_);
    c.send("CONNECT 127.0.0.1:");
  }
  for (auto& t : threads) t.join();
  std::string r = get("http://" + hostPort(http_.port()) + "/still-alive");
  EXPECT_NE(r.find("hello /still-alive"), std::string::npos) << r;
}

// The node runs the proxy on its multi-threaded I/O pool: many sandboxes' connections at once,
// tunnels and refusals interleaved.
TEST_F(EgressProxyTest, ConcurrentClientsOnAMultiThreadedPool) {
  asio::io_context ioc(2);
  auto work = asio::make_work_guard(ioc);
  std::vector<std::thread> io;
  for (int i = 0; i < 2; ++i) io.emplace_back([&] { ioc.run(); });
  proxy_ = egress::newEgressProxy(ioc.get_executor());
  std::vector<std::unique_ptr<egress::EgressListener>> listeners;
  for (int i = 0; i < 4; ++i) {
    auto l = proxy_->listen(dir_ + "/s" + std::to_string(i) + ".sock", "s" + std::to_string(i),
                            allowlistOf({"localhost:" + std::to_string(echo_.port())}));
    ASSERT_TRUE(l.isOk()) << l.status().toString();
    listeners.push_back(std::move(l).value());
  }
  std::atomic<int> tunnels{0}, refusals{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 24; ++i) {
    clients.emplace_back([&, i] {
      UnixClient c(dir_ + "/s" + std::to_string(i % 4) + ".sock");
      if (i % 3 == 0) {
        c.send("CONNECT example.org:443 HTTP/1.1\r\n\r\n");
        refusals += c.readAll().rfind("HTTP/1.1 403", 0) == 0;
        return;
      }
      c.send("CONNECT localhost:" + std::to_string(echo_.port()) + " HTTP/1.1\r\n\r\n");
      if (c.readHead() != "HTTP/1.1 200 Connection established\r\n\r\n") return;
      const std::string msg = "client " + std::to_string(i) + std::string(50'000, 'y');
      c.send(msg);
      tunnels += c.readSome(msg.size()) == msg;
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(refusals.load(), 8);
  EXPECT_EQ(tunnels.load(), 16);
  listeners.clear();
  proxy_.reset();
  work.reset();
  ioc.stop();
  for (auto& t : io) t.join();
}

TEST_F(EgressProxyTest, ClosingTheListenerStopsServing) {
  listen({hostPort(http_.port())});
  EXPECT_NE(get("http://" + hostPort(http_.port()) + "/a").find("hello /a"), std::string::npos);
  listener_.reset();
  // The close runs on the proxy's thread; new connections fail soon after.
  bool refused = false;
  for (int i = 0; i < 100 && !refused; ++i) {
    UnixClient c(socket_);
    refused =
        !c.connected() || (c.send("GET http://" + hostPort(http_.port()) + "/b HTTP/1.1\r\n\r\n") &&
                           c.readAll().empty());
    if (!refused) usleep(10'000);
  }
  EXPECT_TRUE(refused);
}

}  // namespace
}  // namespace kiln::sandbox::testing

// ServerSession: how a CLI command reaches a kiln server. Finds the server (--server /
// KILN_SERVER, else <dataDir>/server.json if it answers /healthz) and the token (--token /
// KILN_TOKEN, else <dataDir>/admin.token); for `kiln run`, can start an embedded Node instead
// and shuts it down on destruction. Not thread-safe.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "cli/config.h"
#include "cli/http_client.h"
#include "node/node.h"

namespace kiln::cli {

class ServerSession {
 public:
  // Connects to an existing server; fails with a one-line reason when none is reachable.
  static Result<std::unique_ptr<ServerSession>> connect(const ClientSettings& settings);
  // Like connect(), but when no server was named and none is found, starts one in-process on
  // 127.0.0.1:0 with the same data dir, for the lifetime of the session. That server accepts
  // local repositories under `allowLocalRepos` (the one repo `kiln run` was given).
  static Result<std::unique_ptr<ServerSession>> connectOrEmbed(
      const ClientSettings& settings, const std::vector<std::string>& allowLocalRepos);

  ~ServerSession();

  HttpClient& client() { return *client_; }
  bool embedded() const { return node_ != nullptr; }

 private:
  ServerSession(std::unique_ptr<HttpClient> client, std::unique_ptr<node::Node> node)
      : client_(std::move(client)), node_(std::move(node)) {}

  std::unique_ptr<HttpClient> client_;
  std::unique_ptr<node::Node> node_;
};

// The server URL from <dataDir>/server.json, if that server answers /healthz.
Result<std::string> discoverServer(const ClientSettings& settings);

}  // namespace kiln::cli

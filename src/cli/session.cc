#include "cli/session.h"

#include <chrono>

namespace kiln::cli {

namespace {

std::string tokenFor(const ClientSettings& settings) {
  if (!settings.token.empty()) return settings.token;
  auto contents = readFile(settings.tokenFile());
  // No token file is not fatal: the server answers 401 with its own clear message.
  return contents ? trimRight(*contents) : "";
}

bool answersHealthz(const std::string& url) {
  HttpClient probe(url, "");
  auto resp = probe.get("/healthz", std::chrono::seconds(2));
  return resp && resp->status == 200;
}

}  // namespace

Result<std::string> discoverServer(const ClientSettings& settings) {
  auto contents = readFile(settings.serverFile());
  if (!contents) {
    return Status(Code::kUnavailable, "no kiln server found (" + settings.serverFile() +
                                          " does not exist); start one with `kiln serve` or "
                                          "pass --server URL");
  }
  ASSIGN_OR_RETURN(std::string url, parseServerFile(*contents));
  if (!answersHealthz(url)) {
    return Status(Code::kUnavailable, "kiln server at " + url + " (from " + settings.serverFile() +
                                          ") does not answer");
  }
  return url;
}

Result<std::unique_ptr<ServerSession>> ServerSession::connect(const ClientSettings& settings) {
  std::string url = settings.server;
  if (url.empty()) {
    ASSIGN_OR_RETURN(url, discoverServer(settings));
  }
  RETURN_IF_ERROR(parseHttpUrl(url).status());
  auto client = std::make_unique<HttpClient>(url, tokenFor(settings));
  return std::unique_ptr<ServerSession>(new ServerSession(std::move(client), nullptr));
}

Result<std::unique_ptr<ServerSession>> ServerSession::connectOrEmbed(
    const ClientSettings& settings, const std::vector<std::string>& allowLocalRepos) {
  if (!settings.server.empty()) return connect(settings);
  if (discoverServer(settings)) return connect(settings);
  // The server settings from the environment (KILN_STORE, KILN_DEFAULT_LIMITS,
  // KILN_SANDBOX_USERNS...), as `kiln serve` reads them; a port of its own.
  ServeFlags flags;
  flags.listen = "127.0.0.1:0";
  ASSIGN_OR_RETURN(node::NodeOptions opts, resolveServeOptions(flags, processEnv()));
  opts.dataDir = settings.dataDir;
  opts.allowLocalRepos.insert(opts.allowLocalRepos.end(), allowLocalRepos.begin(),
                              allowLocalRepos.end());
  RETURN_IF_ERROR(node::resolveDefaults(opts));
  auto node = node::Node::start(opts);
  if (!node) return node.status().withContext("starting an embedded kiln server");
  std::string token = settings.token.empty() ? (*node)->adminToken() : settings.token;
  auto client = std::make_unique<HttpClient>((*node)->url(), token);
  return std::unique_ptr<ServerSession>(
      new ServerSession(std::move(client), std::move(node).value()));
}

ServerSession::~ServerSession() {
  if (node_) {
    node_->shutdown();
    node_->wait();
  }
}

}  // namespace kiln::cli

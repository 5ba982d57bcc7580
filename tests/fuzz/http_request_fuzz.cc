// HTTP request parsing and routing as the API server does it (src/api/http_session.cc): Beast's
// parser with the server's head and body limits, the request target split into path and query,
// the route table matched, the body's depth checked. Input: the bytes a client sends.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "api/request/fields.h"
#include "api/router.h"

namespace {

using namespace kiln;

// The route shapes of docs/api.md; the handlers are never called.
const api::Router& router() {
  static const api::Router* r = [] {
    auto* r = new api::Router();
    for (auto [verb, pattern] : std::initializer_list<std::pair<http::verb, const char*>>{
             {http::verb::get, "/healthz"},
             {http::verb::get, "/metrics"},
             {http::verb::get, "/api/v1/jobs"},
             {http::verb::post, "/api/v1/jobs"},
             {http::verb::get, "/api/v1/jobs/{id}"},
             {http::verb::get, "/api/v1/jobs/{id}/stream"},
             {http::verb::post, "/api/v1/jobs/{id}/reply"},
             {http::verb::get, "/assets/{name}"},
             {http::verb::post, "/api/v1/tokens/{id}/revoke"},
             {http::verb::post, "/api/v1/tenants/{id}/quota"},
         }) {
      r->add(verb, pattern, api::Access::kRead, api::Handler{});
    }
    return r;
  }();
  return *r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  http::request_parser<http::string_body> parser;
  parser.header_limit(16 * 1024);
  parser.body_limit(1 << 20);
  parser.eager(true);
  boost::system::error_code ec;
  boost::asio::const_buffer buf(data, size);
  while (buf.size() > 0 && !parser.is_done()) {
    size_t used = parser.put(buf, ec);
    if (ec == http::error::need_more && used == 0) return 0;
    if (ec && ec != http::error::need_more) return 0;
    buf += used;
  }
  if (!parser.is_done()) return 0;
  const auto& req = parser.get();
  std::string path;
  std::map<std::string, std::string> query;
  if (!api::splitTarget(std::string_view(req.target().data(), req.target().size()), path, query)) {
    return 0;
  }
  auto match = router().match(req.method(), path);
  if (match.kind == api::Router::MatchKind::kFound && match.handler == nullptr) __builtin_trap();
  if (match.kind == api::Router::MatchKind::kMethodNotAllowed && match.allow.empty()) {
    __builtin_trap();
  }
  if (!api::request::nestsDeeperThan(req.body(), api::request::kMaxJsonDepth)) {
    (void)api::request::parseBody(req.body());
  }
  return 0;
}

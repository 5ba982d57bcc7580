// The web dashboard (web/): every dashboard path answers the same page, which loads the
// content-hashed script and stylesheet from /assets/. Open routes: the page holds no data;
// the API calls it makes carry the token.
#include <cctype>
#include <cstdlib>
#include <string>

#include "api/routes/routes.h"
#include "api/web_assets.h"

namespace kiln::api {
namespace {

const WebAsset* findAsset(std::string_view name) {
  for (const auto& a : webAssets())
    if (a.name == name) return &a;
  return nullptr;
}

std::string_view header(const Request& req, http::field f) {
  auto v = req.http[f];
  return {v.data(), v.size()};
}

// `a` equals `lower` (all lower case) ignoring case.
bool equalsIgnoreCase(std::string_view a, std::string_view lower) {
  if (a.size() != lower.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != lower[i]) return false;
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Calls fn(item) for each comma-separated item of a header, trimmed, until fn returns true.
template <typename Fn>
bool anyItem(std::string_view header, Fn fn) {
  while (!header.empty()) {
    size_t comma = header.find(',');
    if (fn(trim(header.substr(0, comma)))) return true;
    if (comma == std::string_view::npos) break;
    header.remove_prefix(comma + 1);
  }
  return false;
}

// Accept-Encoding lists gzip (or *) with a q-value above 0.
bool acceptsGzip(std::string_view header) {
  return anyItem(header, [](std::string_view item) {
    size_t semi = item.find(';');
    std::string_view coding = trim(item.substr(0, semi));
    if (!equalsIgnoreCase(coding, "gzip") && coding != "*") return false;
    if (semi == std::string_view::npos) return true;
    std::string_view param = trim(item.substr(semi + 1));
    if (!param.starts_with("q=")) return true;
    return std::strtod(std::string(param.substr(2)).c_str(), nullptr) > 0;
  });
}

// If-None-Match names `etag` or is "*"; weak comparison, as RFC 9110 asks for this header.
bool matchesEtag(std::string_view header, std::string_view etag) {
  return anyItem(header, [&](std::string_view item) {
    if (item.starts_with("W/")) item.remove_prefix(2);
    return item == "*" || item == etag;
  });
}

Reply assetReply(const Request& req, const WebAsset& a) {
  Reply r;
  const bool gzip = !a.gzipBody.empty() && acceptsGzip(header(req, http::field::accept_encoding));
  const std::string etag =
      gzip ? std::string(a.etag).insert(a.etag.size() - 1, "-gz") : std::string(a.etag);
  r.contentType = std::string(a.contentType);
  r.headers.emplace_back("ETag", etag);
  r.headers.emplace_back("Cache-Control",
                         a.immutable ? "public, max-age=31536000, immutable" : "no-cache");
  if (!a.gzipBody.empty()) r.headers.emplace_back("Vary", "Accept-Encoding");
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  if (!a.immutable) {
    // The page itself: no framing, scripts only from here, no third-party anything.
    r.headers.emplace_back("Content-Security-Policy",
                           "default-src 'self'; style-src 'self' 'unsafe-inline'; "
                           "img-src 'self' data:; object-src 'none'; base-uri 'none'; "
                           "frame-ancestors 'none'");
    r.headers.emplace_back("Referrer-Policy", "no-referrer");
  }
  if (matchesEtag(header(req, http::field::if_none_match), etag)) {
    r.status = 304;
    return r;
  }
  if (gzip) r.headers.emplace_back("Content-Encoding", "gzip");
  r.body = std::string(gzip ? a.gzipBody : a.body);
  return r;
}

Task<Reply> page(Request& req) {
  const WebAsset* a = findAsset("index.html");
  if (a == nullptr) co_return errorReply(ApiError::notFound("this build has no web dashboard"));
  co_return assetReply(req, *a);
}

Task<Reply> asset(Request& req) {
  const std::string& name = req.param("name");
  const WebAsset* a = name == "index.html" ? nullptr : findAsset(name);
  if (a == nullptr) co_return errorReply(ApiError::notFound("no asset " + name));
  co_return assetReply(req, *a);
}

}  // namespace

void addWebRoutes(Router& r) {
  for (const char* path : {"/", "/jobs", "/jobs/new", "/jobs/{id}", "/nodes"}) {
    r.add(http::verb::get, path, Access::kOpen, page);
  }
  r.add(http::verb::get, "/assets/{name}", Access::kOpen, asset);
}

}  // namespace kiln::api

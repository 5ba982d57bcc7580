#include "common/url.h"

#include <curl/curl.h>

#include <memory>

namespace kiln {
namespace {

using CurlUrl = std::unique_ptr<CURLU, decltype(&curl_url_cleanup)>;

// One part, "" when the URL has none.
std::string part(CURLU* u, CURLUPart which) {
  char* value = nullptr;
  if (curl_url_get(u, which, &value, 0) != CURLUE_OK || !value) return "";
  std::string out(value);
  curl_free(value);
  return out;
}

}  // namespace

std::string Url::authority() const {
  std::string out = ipv6 ? "[" + host + "]" : host;
  return port.empty() ? out : out + ":" + port;
}

Result<Url> parseUrl(std::string_view text) {
  CurlUrl u(curl_url(), &curl_url_cleanup);
  if (!u) return internalError("url: out of memory");
  // curl_url_set takes a C string: an embedded NUL would silently cut the URL short.
  if (text.find('\0') != std::string_view::npos) return invalidArgument("url: NUL byte in URL");
  // curl takes "http:/h" and "http:///h" for "http://h"; kiln reads only the standard form.
  const size_t colon = text.find(':');
  if (colon == std::string_view::npos || text.substr(colon, 3) != "://" ||
      text.substr(colon + 3, 1) == "/") {
    return invalidArgument("url: expected scheme://host...");
  }
  const std::string s(text);
  CURLUcode rc =
      curl_url_set(u.get(), CURLUPART_URL, s.c_str(), CURLU_NON_SUPPORT_SCHEME | CURLU_PATH_AS_IS);
  if (rc != CURLUE_OK) return invalidArgument(std::string("url: ") + curl_url_strerror(rc));
  Url url;
  url.scheme = part(u.get(), CURLUPART_SCHEME);
  url.userinfo = part(u.get(), CURLUPART_USER);
  if (std::string password = part(u.get(), CURLUPART_PASSWORD); !password.empty()) {
    url.userinfo += ":" + password;
  }
  url.host = part(u.get(), CURLUPART_HOST);
  if (url.host.size() > 2 && url.host.front() == '[' && url.host.back() == ']') {
    url.host = url.host.substr(1, url.host.size() - 2);
    url.ipv6 = true;
  }
  if (url.host.empty()) return invalidArgument("url: no host");
  url.port = part(u.get(), CURLUPART_PORT);
  url.path = part(u.get(), CURLUPART_PATH);
  if (url.path.empty()) url.path = "/";
  url.query = part(u.get(), CURLUPART_QUERY);
  url.fragment = part(u.get(), CURLUPART_FRAGMENT);
  return url;
}

}  // namespace kiln

// Url: an absolute URL split into its parts by libcurl's URL parser (curl_url), the one URL
// splitter of kiln: the CLI's server URL, repository remotes, model API base URLs, the egress
// proxy's request targets and image mirrors all go through parseUrl. Pure; thread-safe.
#pragma once
#include <string>
#include <string_view>

#include "common/result.h"

namespace kiln {

struct Url {
  std::string scheme;    // lower case: "https"
  std::string userinfo;  // "user" or "user:password" before '@'; empty when there is none
  std::string host;      // without the brackets of an IPv6 address
  std::string port;      // as written; empty when the URL names none
  std::string path;      // "/" at least, dot segments kept as written
  std::string query;     // without the '?'
  std::string fragment;  // without the '#'
  bool ipv6 = false;

  // "host[:port]" as a URL writes it (an IPv6 host in brackets); no userinfo.
  std::string authority() const;
};

// Any scheme is accepted ("ssh://", "git://"); a host is required. invalid_argument naming
// what is wrong ("bad port number", "no host part in the URL", ...) for anything else.
Result<Url> parseUrl(std::string_view text);

}  // namespace kiln

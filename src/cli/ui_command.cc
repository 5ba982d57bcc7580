// `kiln ui`: prints the web dashboard's address with a one-time sign-in link for the token the
// CLI would use. The token rides in the URL's fragment, which the browser never sends to the
// server; the page moves it to its storage and drops it from the address bar.
#include <cctype>
#include <iostream>

#include "cli/commands.h"
#include "cli/session.h"

namespace kiln::cli {
namespace {

// RFC 3986 unreserved characters pass; everything else is %XX.
std::string percentEncode(const std::string& s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

}  // namespace

int uiCommand(const ClientFlags& clientFlags) {
  auto session = ServerSession::connect(clientSettings(clientFlags));
  if (!session) return fail(session.status().message());
  HttpClient& client = (*session)->client();
  if (client.token().empty()) {
    return fail("no token: pass --token, set KILN_TOKEN, or point --data-dir at the server's");
  }
  // Check the token first: a link that only shows the sign-in page helps nobody.
  auto resp = client.get("/api/v1/jobs?limit=1");
  if (!resp) return fail(resp.status().message());
  if (auto body = jsonBody(*resp); !body) return fail(body.status().message());
  std::string base = client.baseUrl();
  while (!base.empty() && base.back() == '/') base.pop_back();
  std::cout << "kiln dashboard: " << base << "/\n"
            << "sign in with:   " << base << "/#token=" << percentEncode(client.token()) << "\n";
  return kExitOk;
}

}  // namespace kiln::cli

// `kiln token create | list | revoke` and `kiln tenant quota set | show`. Token commands go
// through the API of the server the client finds (with an admin token), or, with no server
// running (or --direct), straight to the data dir's store with the token key the server uses
// (KILN_TOKEN_KEY, else <data-dir>/token.key; the store from KILN_STORE, else the data dir's).
#include <sys/stat.h>

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "cli/commands.h"
#include "cli/session.h"
#include "common/clock.h"
#include "store/store.h"
#include "tenancy/tokens.h"

namespace kiln::cli {
namespace {

// The store and token key of the client's data dir, for the direct mode.
struct DirectStore {
  std::unique_ptr<store::Store> store;
  std::optional<tenancy::TokenKey> key;
};

Result<DirectStore> openDirect(const ClientFlags& flags) {
  const ClientSettings settings = clientSettings(flags);
  std::error_code ec;
  std::filesystem::create_directories(settings.dataDir, ec);
  if (ec) return internalError("create data dir " + settings.dataDir + ": " + ec.message());
  ::chmod(settings.dataDir.c_str(), 0700);
  auto env = processEnv();
  const std::string url = env("KILN_STORE").value_or("sqlite:" + settings.dataDir + "/kiln.db");
  DirectStore out;
  ASSIGN_OR_RETURN(out.store, store::Store::open({url}));
  ASSIGN_OR_RETURN(tenancy::TokenKey key,
                   tenancy::TokenKey::load(settings.dataDir, env("KILN_TOKEN_KEY").value_or("")));
  RETURN_IF_ERROR(tenancy::checkStoreKey(*out.store, key));
  out.key = std::move(key);
  return out;
}

// Token commands use the store directly with --direct, or when no server is named or found.
bool direct(const TokenFlags& flags, const ClientFlags& client) {
  if (flags.direct) return true;
  const ClientSettings settings = clientSettings(client);
  return settings.server.empty() && !discoverServer(settings).isOk();
}

std::string orDash(const json& v) { return v.is_string() ? v.get<std::string>() : "-"; }

std::string tokensTable(const json& tokens) {
  char line[320];
  std::snprintf(line, sizeof line, "%-20s %-16s %-7s %-24s %-24s %s\n", "TOKEN", "TENANT", "ROLE",
                "CREATED", "REVOKED", "NAME");
  std::string out = line;
  for (const auto& t : tokens) {
    std::snprintf(line, sizeof line, "%-20s %-16s %-7s %-24s %-24s %s\n",
                  t.value("tokenId", "").c_str(), t.value("tenant", "").c_str(),
                  t.value("role", "").c_str(), t.value("createdAt", "").c_str(),
                  orDash(t.value("revokedAt", json())).c_str(), t.value("name", "").c_str());
    out += line;
  }
  return out;
}

bool plainId(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') {
      return false;
    }
  }
  return true;
}

}  // namespace

int tokenCreateCommand(const TokenFlags& flags, const ClientFlags& client) {
  auto role = store::parseRole(flags.role);
  if (!role) return fail("--role must be admin, member or viewer");
  json token;
  if (direct(flags, client)) {
    if (flags.tenant.empty()) return fail("--tenant is required without a server");
    auto st = openDirect(client);
    if (!st) return fail(st.status().message());
    auto issued = tenancy::issueToken(*st->store, *st->key, flags.tenant, flags.name, *role,
                                      RealClock::instance().nowMs());
    if (!issued) return fail(issued.status().message());
    token = tenancy::tokenJson(issued->token);
    token["token"] = issued->secret;
  } else {
    json body = {{"name", flags.name}, {"role", flags.role}};
    if (!flags.tenant.empty()) body["tenant"] = flags.tenant;
    auto created = request(client, "POST", "/api/v1/tokens", body);
    if (!created) return fail(created.status().message());
    token = *created;
  }
  if (flags.json) {
    std::cout << token.dump(2) << "\n";
    return kExitOk;
  }
  // The token alone on the last line, for `| tail -n 1`.
  std::cout << "created token " << token.value("tokenId", "") << " of tenant "
            << token.value("tenant", "") << " (role " << token.value("role", "") << ")"
            << (flags.name.empty() ? "" : ", named \"" + flags.name + "\"")
            << "; it is shown only now:\n"
            << token.value("token", "") << "\n"
            << std::flush;
  return kExitOk;
}

int tokenListCommand(const TokenFlags& flags, const ClientFlags& client) {
  json tokens = json::array();
  if (direct(flags, client)) {
    auto st = openDirect(client);
    if (!st) return fail(st.status().message());
    auto list = st->store->listTokens(flags.tenant);
    if (!list) return fail(list.status().message());
    for (const auto& t : *list) tokens.push_back(tenancy::tokenJson(t));
  } else {
    if (!flags.tenant.empty() && !tenancy::validTenantId(flags.tenant)) {
      return fail("no tenant " + flags.tenant);
    }
    std::string target = "/api/v1/tokens";
    if (!flags.tenant.empty()) target += "?tenant=" + flags.tenant;
    auto body = request(client, "GET", target);
    if (!body) return fail(body.status().message());
    tokens = body->value("tokens", json::array());
  }
  std::cout << (flags.json ? json{{"tokens", tokens}}.dump(2) + "\n" : tokensTable(tokens))
            << std::flush;
  return kExitOk;
}

int tokenRevokeCommand(const std::string& id, const TokenFlags& flags, const ClientFlags& client) {
  if (!plainId(id)) return fail("no token " + id);
  if (direct(flags, client)) {
    auto st = openDirect(client);
    if (!st) return fail(st.status().message());
    auto revoked = st->store->revokeToken(id, "", RealClock::instance().nowMs());
    if (!revoked) return fail(revoked.status().message());
  } else {
    auto body = request(client, "POST", "/api/v1/tokens/" + id + "/revoke");
    if (!body) return fail(body.status().message());
  }
  std::cout << "revoked token " << id << "\n" << std::flush;
  return kExitOk;
}

namespace {

// "none" removes a quota; anything else must be a number.
Status quotaValue(const std::string& flag, const std::string& v, bool integer, json& body,
                  const char* key) {
  if (v.empty()) return Status::ok();
  if (v == "none") {
    body[key] = nullptr;
    return Status::ok();
  }
  char* end = nullptr;
  const double d = std::strtod(v.c_str(), &end);
  if (!end || *end || v.empty()) return invalidArgument(flag + " must be a number or none");
  if (integer) {
    body[key] = static_cast<int64_t>(d);
    if (static_cast<double>(static_cast<int64_t>(d)) != d) {
      return invalidArgument(flag + " must be a whole number or none");
    }
  } else {
    body[key] = d;
  }
  return Status::ok();
}

std::string quotaText(const json& q) {
  auto limit = [](const json& v) { return v.is_null() ? std::string("unlimited") : v.dump(); };
  const json& u = q.value("usage", json::object());
  return "tenant " + q.value("tenant", "") + "\n" +
         "  max running:   " + limit(q.value("maxRunning", json())) + " (running " +
         u.value("running", json(0)).dump() + ", unfinished " + u.value("active", json(0)).dump() +
         ")\n" + "  jobs per hour: " + limit(q.value("jobsPerHour", json())) + " (last hour " +
         u.value("jobsLastHour", json(0)).dump() + ")\n" +
         "  usd per day:   " + limit(q.value("usdPerDay", json())) + " (today " +
         u.value("usdToday", json(0)).dump() + ")\n";
}

}  // namespace

int quotaCommand(const QuotaFlags& flags, bool set, const ClientFlags& client) {
  if (!tenancy::validTenantId(flags.tenant)) return fail("no tenant " + flags.tenant);
  const std::string target = "/api/v1/tenants/" + flags.tenant + "/quota";
  Result<json> quota = json();
  if (set) {
    json body = json::object();
    for (Status st : {quotaValue("--max-running", flags.maxRunning, true, body, "maxRunning"),
                      quotaValue("--jobs-per-hour", flags.jobsPerHour, true, body, "jobsPerHour"),
                      quotaValue("--usd-per-day", flags.usdPerDay, false, body, "usdPerDay")}) {
      if (!st) return fail(st.message());
    }
    quota = request(client, "POST", target, body);
  } else {
    quota = request(client, "GET", target);
  }
  if (!quota) return fail(quota.status().message());
  std::cout << (flags.json ? quota->dump(2) + "\n" : quotaText(*quota)) << std::flush;
  return kExitOk;
}

}  // namespace kiln::cli

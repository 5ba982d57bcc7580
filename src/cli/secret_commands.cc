// `kiln secret set|list|rm`: the tenant's secrets over the HTTP API (with the tenant's token).
// A value is read from stdin (or a prompt that does not echo), never from argv, where any user
// of the machine could read it in /proc.
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "cli/commands.h"

namespace kiln::cli {
namespace {

// The value: a prompt without echo on a terminal, else all of stdin (one trailing newline
// dropped, as `echo value | kiln secret set NAME` adds one).
Result<std::string> readValue(const std::string& name) {
  std::string value;
  if (isatty(STDIN_FILENO)) {
    std::cerr << "value of " << name << ": " << std::flush;
    termios old{};
    bool restore = tcgetattr(STDIN_FILENO, &old) == 0;
    if (restore) {
      termios quiet = old;
      quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
      tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    std::getline(std::cin, value);
    if (restore) tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
    std::cerr << "\n";
  } else {
    value.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    if (!value.empty() && value.back() == '\n') value.pop_back();
    if (!value.empty() && value.back() == '\r') value.pop_back();
  }
  if (value.empty()) return invalidArgument("no value given on stdin");
  return value;
}

}  // namespace

int secretSetCommand(const SecretFlags& flags, const ClientFlags& client) {
  auto value = readValue(flags.name);
  if (!value) return fail(value.status().message());
  nlohmann::json body = {{"value", *value}};
  if (!flags.hosts.empty()) body["hosts"] = flags.hosts;
  if (!flags.mode.empty()) body["mode"] = flags.mode;
  auto reply = request(client, "PUT", "/api/v1/secrets/" + flags.name, body);
  if (!reply) return fail(reply.status().message());
  std::cout << "secret " << flags.name << " set (" << reply->value("mode", "env") << " mode)\n";
  return kExitOk;
}

int secretListCommand(bool asJson, const ClientFlags& client) {
  auto reply = request(client, "GET", "/api/v1/secrets");
  if (!reply) return fail(reply.status().message());
  if (asJson) {
    std::cout << reply->dump(2) << "\n";
    return kExitOk;
  }
  for (const auto& s : reply->value("secrets", nlohmann::json::array())) {
    std::string hosts;
    for (const auto& h : s.value("hosts", nlohmann::json::array()))
      hosts += (hosts.empty() ? "" : ",") + h.get<std::string>();
    std::printf("%-32s %-6s %s\n", s.value("name", "").c_str(), s.value("mode", "").c_str(),
                hosts.c_str());
  }
  return kExitOk;
}

int secretRemoveCommand(const std::string& name, const ClientFlags& client) {
  auto reply = request(client, "DELETE", "/api/v1/secrets/" + name);
  if (!reply) return fail(reply.status().message());
  std::cout << "secret " << name << " removed\n";
  return kExitOk;
}

}  // namespace kiln::cli

// `kiln nodes` and `kiln nodes drain`: the fleet's nodes over the HTTP API.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <thread>

#include "cli/commands.h"

namespace kiln::cli {
namespace {

std::string megabytes(const json& bytes) {
  int64_t b = bytes.is_number_integer() ? bytes.get<int64_t>() : -1;
  return b < 0 ? "-" : std::to_string(b >> 20);
}

std::string nodesTable(const json& nodes) {
  char line[256];
  std::snprintf(line, sizeof line, "%-24s %-8s %7s %-9s %9s %9s %-24s %s\n", "NODE", "STATE",
                "JOBS", "VERSION", "DISK MiB", "MEM MiB", "LAST HEARTBEAT", "ADDRESS");
  std::string out = line;
  for (const auto& n : nodes) {
    std::string state = !n.value("live", false)      ? "gone"
                        : n.value("draining", false) ? "draining"
                        : n.value("claiming", false) ? "ready"
                                                     : "full";
    std::string jobs =
        std::to_string(n.value("runningJobs", 0)) + "/" + std::to_string(n.value("maxJobs", 0));
    std::snprintf(line, sizeof line, "%-24s %-8s %7s %-9s %9s %9s %-24s %s\n",
                  n.value("nodeId", "").c_str(), state.c_str(), jobs.c_str(),
                  n.value("version", "").c_str(),
                  megabytes(n.value("diskFreeBytes", json())).c_str(),
                  megabytes(n.value("memAvailableBytes", json())).c_str(),
                  n.value("lastHeartbeat", "").c_str(), n.value("address", "").c_str());
    out += line;
  }
  return out;
}

}  // namespace

int nodesCommand(bool asJson, const ClientFlags& flags) {
  auto body = request(flags, "GET", "/api/v1/nodes");
  if (!body) return fail(body.status().message());
  const json nodes = body->value("nodes", json::array());
  std::cout << (asJson ? body->dump(2) + "\n" : nodesTable(nodes)) << std::flush;
  return kExitOk;
}

int drainCommand(const std::string& nodeId, bool wait, const ClientFlags& flags) {
  auto body = request(flags, "POST", "/api/v1/nodes/" + nodeId + "/drain");
  if (!body) return fail(body.status().message());
  std::cout << "draining node " << nodeId << "\n" << std::flush;
  while (wait) {
    auto nodes = request(flags, "GET", "/api/v1/nodes");
    if (!nodes) return fail(nodes.status().message());
    bool busy = false;
    for (const auto& n : nodes->value("nodes", json::array())) {
      if (n.value("nodeId", "") == nodeId) {
        busy = n.value("live", false) && n.value("runningJobs", 0) > 0;
      }
    }
    if (!busy) break;
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  return kExitOk;
}

}  // namespace kiln::cli

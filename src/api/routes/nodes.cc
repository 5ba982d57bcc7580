// GET /api/v1/nodes, POST /api/v1/nodes/{id}/drain, and the per-node figures of /metrics.
#include "api/routes/routes.h"
#include "common/clock.h"
#include "common/json_fields.h"

namespace kiln::api {
namespace {

// A node whose heartbeat is older than this is reported as not live (it died, or lost the
// database); its jobs' leases lapse and other nodes take them over.
constexpr int64_t kLiveMs = 15'000;

json nodeJson(const store::NodeRecord& n, int64_t nowMs) {
  return {{"nodeId", n.id},
          {"address", n.address},
          {"version", n.version},
          {"runningJobs", n.runningJobs},
          {"maxJobs", n.maxJobs},
          {"claiming", n.claiming},
          {"draining", n.draining},
          {"blockedBy", fieldOr(n.figures, "blockedBy", std::string())},
          {"diskFreeBytes", fieldOr(n.figures, "diskFreeBytes", int64_t{-1})},
          {"memAvailableBytes", fieldOr(n.figures, "memAvailableBytes", int64_t{-1})},
          {"startedAt", formatTimeMs(n.startedAt)},
          {"lastHeartbeat", formatTimeMs(n.heartbeatAt)},
          {"live", nowMs - n.heartbeatAt < kLiveMs}};
}

Task<Reply> listNodes(Request& req) {
  auto* store = req.env.deps.store;
  auto nodes = co_await req.env.deps.pool->run([&] { return store->listNodes(); });
  if (!nodes) co_return errorReply(nodes.status());
  const int64_t now = req.env.deps.clock->nowMs();
  json out = json::array();
  for (const auto& n : *nodes) out.push_back(nodeJson(n, now));
  co_return jsonReply(200, {{"nodes", std::move(out)}});
}

Task<Reply> drainNode(Request& req) {
  const std::string& id = req.param("id");
  auto* store = req.env.deps.store;
  Status st = co_await req.env.deps.pool->run([&] { return store->requestDrain(id); });
  if (!st) co_return errorReply(st.code() == Code::kNotFound ? notFound("no node " + id) : st);
  co_return jsonReply(202, {{"nodeId", id}, {"draining", true}});
}

}  // namespace

Result<std::string> renderNodeMetrics(store::Store* store, int64_t nowMs) {
  ASSIGN_OR_RETURN(auto nodes, store->listNodes());
  std::string running =
      "# HELP kiln_node_running_jobs Jobs running on each node (its last heartbeat).\n"
      "# TYPE kiln_node_running_jobs gauge\n";
  std::string capacity =
      "# HELP kiln_node_max_jobs Jobs each node may run at once.\n"
      "# TYPE kiln_node_max_jobs gauge\n";
  std::string claiming =
      "# HELP kiln_node_claiming 1 while the node takes new jobs.\n"
      "# TYPE kiln_node_claiming gauge\n";
  std::string draining =
      "# HELP kiln_node_draining 1 once the node is draining.\n"
      "# TYPE kiln_node_draining gauge\n";
  std::string age =
      "# HELP kiln_node_heartbeat_age_seconds Seconds since the node's last heartbeat.\n"
      "# TYPE kiln_node_heartbeat_age_seconds gauge\n";
  std::string disk =
      "# HELP kiln_node_disk_free_bytes Free space of the node's data dir filesystem.\n"
      "# TYPE kiln_node_disk_free_bytes gauge\n";
  std::string mem =
      "# HELP kiln_node_memory_available_bytes Memory the node may still use.\n"
      "# TYPE kiln_node_memory_available_bytes gauge\n";
  for (const auto& n : nodes) {
    // Node ids are the operator's (--node-id): escape them as Prometheus label values.
    std::string label = "{node=\"";
    for (char c : n.id) {
      if (c == '\\' || c == '"') label += '\\';
      if (c == '\n') {
        label += "\\n";
        continue;
      }
      label += c;
    }
    label += "\"} ";
    running += "kiln_node_running_jobs" + label + std::to_string(n.runningJobs) + "\n";
    capacity += "kiln_node_max_jobs" + label + std::to_string(n.maxJobs) + "\n";
    claiming += "kiln_node_claiming" + label + (n.claiming ? "1\n" : "0\n");
    draining += "kiln_node_draining" + label + (n.draining ? "1\n" : "0\n");
    age += "kiln_node_heartbeat_age_seconds" + label +
           std::to_string(std::max<int64_t>(0, nowMs - n.heartbeatAt) / 1000) + "\n";
    disk += "kiln_node_disk_free_bytes" + label +
            std::to_string(fieldOr(n.figures, "diskFreeBytes", int64_t{-1})) + "\n";
    mem += "kiln_node_memory_available_bytes" + label +
           std::to_string(fieldOr(n.figures, "memAvailableBytes", int64_t{-1})) + "\n";
  }
  return running + capacity + claiming + draining + age + disk + mem;
}

void addNodeRoutes(Router& r) {
  r.add(http::verb::get, "/api/v1/nodes", Access::kOperator, listNodes);
  r.add(http::verb::post, "/api/v1/nodes/{id}/drain", Access::kOperatorAdmin, drainNode);
}

}  // namespace kiln::api

// deploy/k8s/: the kustomize base renders with `kubectl kustomize`, and the objects it makes
// fit together: a privileged node Deployment that drains before it stops, a Service that
// selects its pods, the Secret and the PostgreSQL reference the nodes read. And the systemd
// unit of deploy/systemd/.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "support/temp_dir.h"

namespace kiln::testing {
namespace {

using nlohmann::json;

class K8sManifestsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (shell("command -v kubectl") != 0) GTEST_SKIP() << "kubectl is not installed";
    std::string out;
    // python3-yaml turns the rendered documents into JSON for the checks.
    int rc =
        shell("kubectl kustomize " + shellQuote(std::string(KILN_SOURCE_DIR) + "/deploy/k8s/base") +
                  " 2>/dev/null | python3 -c 'import sys, yaml, json; "
                  "print(json.dumps([d for d in yaml.safe_load_all(sys.stdin) if d]))'",
              &out);
    ASSERT_EQ(rc, 0) << out;
    json docs = json::parse(out, nullptr, false);
    ASSERT_TRUE(docs.is_array()) << out;
    for (auto& d : docs) objects_[d.value("kind", "") + "/" + d["metadata"].value("name", "")] = d;
  }

  const json& object(const std::string& key) {
    static const json kNone;
    auto it = objects_.find(key);
    EXPECT_NE(it, objects_.end()) << key << " is not rendered";
    return it == objects_.end() ? kNone : it->second;
  }

  std::map<std::string, json> objects_;
};

TEST_F(K8sManifestsTest, NodesArePrivilegedAndDrainBeforeStopping) {
  const json& dep = object("Deployment/kiln");
  ASSERT_TRUE(dep.is_object());
  EXPECT_GE(dep["spec"].value("replicas", 0), 2);
  const json& pod = dep["spec"]["template"]["spec"];
  ASSERT_EQ(pod["containers"].size(), 1u);
  const json& c = pod["containers"][0];
  EXPECT_TRUE(c["securityContext"].value("privileged", false))
      << "the namespace backend needs namespaces, mounts and cgroups";
  std::string args = c["args"].dump();
  EXPECT_NE(args.find("\"serve\""), std::string::npos) << args;
  EXPECT_NE(args.find("--node-id=$(POD_NAME)"), std::string::npos) << args;
  // The grace period outlasts the drain timeout, so jobs finish or hand over before SIGKILL.
  auto at = args.find("--drain-timeout=");
  ASSERT_NE(at, std::string::npos) << args;
  int drainSeconds = std::atoi(args.c_str() + at + 16);
  EXPECT_GT(pod.value("terminationGracePeriodSeconds", 0), drainSeconds);
  std::string preStop = c["lifecycle"]["preStop"]["exec"]["command"].dump();
  EXPECT_NE(preStop.find("nodes drain"), std::string::npos) << preStop;
  EXPECT_NE(preStop.find("--wait"), std::string::npos) << preStop;
  EXPECT_EQ(c["readinessProbe"]["httpGet"].value("path", ""), "/healthz");

  bool storeFromSecret = false;
  bool tokenKeyFromSecret = false;
  for (const auto& e : c["env"]) {
    if (e.value("name", "") == "KILN_STORE") {
      storeFromSecret = e["valueFrom"]["secretKeyRef"].value("name", "") == "kiln" &&
                        e["valueFrom"]["secretKeyRef"].value("key", "") == "store-url";
    }
    if (e.value("name", "") == "KILN_TOKEN_KEY") {
      tokenKeyFromSecret = e["valueFrom"]["secretKeyRef"].value("name", "") == "kiln" &&
                           e["valueFrom"]["secretKeyRef"].value("key", "") == "token-key";
    }
  }
  EXPECT_TRUE(storeFromSecret) << c["env"].dump();
  EXPECT_TRUE(tokenKeyFromSecret) << "every node must hash tokens with the same key: "
                                  << c["env"].dump();
  bool tokenMounted = false;
  for (const auto& m : c["volumeMounts"]) {
    tokenMounted |= m.value("mountPath", "") == "/var/lib/kiln/admin.token" &&
                    m.value("subPath", "") == "admin-token";
  }
  EXPECT_TRUE(tokenMounted) << "every node must register the same admin token";
}

TEST_F(K8sManifestsTest, ServiceSecretAndDatabaseFitTheDeployment) {
  const json& dep = object("Deployment/kiln");
  const json& svc = object("Service/kiln");
  ASSERT_TRUE(dep.is_object() && svc.is_object());
  const json& labels = dep["spec"]["template"]["metadata"]["labels"];
  for (const auto& [k, v] : svc["spec"]["selector"].items()) EXPECT_EQ(labels.value(k, ""), v) << k;
  EXPECT_EQ(dep["spec"]["selector"]["matchLabels"], svc["spec"]["selector"]);
  std::string target = svc["spec"]["ports"][0].value("targetPort", "");
  bool portNamed = false;
  for (const auto& p : dep["spec"]["template"]["spec"]["containers"][0]["ports"]) {
    portNamed |= p.value("name", "") == target && p.value("containerPort", 0) == 8080;
  }
  EXPECT_TRUE(portNamed) << target;

  const json& secret = object("Secret/kiln");
  ASSERT_TRUE(secret.is_object());
  std::string url = secret["stringData"].value("store-url", "");
  EXPECT_EQ(url.rfind("postgres://", 0), 0u) << url;
  EXPECT_FALSE(secret["stringData"].value("admin-token", "").empty());
  EXPECT_GE(secret["stringData"].value("token-key", "").size(), 32u);
  const json& db = object("Service/kiln-postgres");
  ASSERT_TRUE(db.is_object());
  EXPECT_EQ(db["spec"].value("type", ""), "ExternalName");
  EXPECT_NE(url.find("@kiln-postgres:"), std::string::npos) << "the store URL names the reference";
}

// deploy/systemd/kiln.service: the unit runs `kiln serve`, reads its settings (the store URL)
// from an optional environment file, and gives a stopping node longer than its drain timeout.
TEST(SystemdUnitTest, ServesDrainsOnStopAndReadsTheStoreFromTheEnvironment) {
  std::ifstream in(std::string(KILN_SOURCE_DIR) + "/deploy/systemd/kiln.service");
  ASSERT_TRUE(in) << "deploy/systemd/kiln.service is missing";
  std::map<std::string, std::map<std::string, std::string>> unit;
  std::string line, section;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    if (line.front() == '[' && line.back() == ']') {
      section = line.substr(1, line.size() - 2);
      continue;
    }
    auto eq = line.find('=');
    ASSERT_NE(eq, std::string::npos) << "not a key=value line: " << line;
    unit[section][line.substr(0, eq)] = line.substr(eq + 1);
  }
  auto& svc = unit["Service"];
  const std::string exec = svc["ExecStart"];
  EXPECT_EQ(exec.rfind("/usr/bin/kiln serve ", 0), 0u) << exec;
  EXPECT_NE(exec.find("--data-dir=/var/lib/kiln"), std::string::npos) << exec;
  auto at = exec.find("--drain-timeout=");
  ASSERT_NE(at, std::string::npos) << exec;
  const int drainSeconds = std::atoi(exec.c_str() + at + 16);
  EXPECT_GT(drainSeconds, 0);
  EXPECT_GT(std::atoi(svc["TimeoutStopSec"].c_str()), drainSeconds)
      << "systemd must not SIGKILL a node before its drain timeout";
  EXPECT_EQ(svc["KillSignal"], "SIGTERM") << "SIGTERM drains";
  EXPECT_EQ(svc["EnvironmentFile"], "-/etc/default/kiln")
      << "KILN_STORE comes from an optional environment file";
  EXPECT_EQ(svc["Delegate"], "yes") << "sandboxes need their own cgroup subtree";
  EXPECT_EQ(unit["Install"]["WantedBy"], "multi-user.target");
}

}  // namespace
}  // namespace kiln::testing

#include "api/request/job_spec.h"

#include <algorithm>
#include <cctype>
#include <set>

#include "api/request/fields.h"

namespace kiln::api::request {
namespace {

bool isStringArray(const json& v) {
  if (!v.is_array()) return false;
  for (const auto& e : v) {
    if (!e.is_string()) return false;
  }
  return true;
}

Status parseCli(const json& cli, JobSpec& spec) {
  RETURN_IF_ERROR(checkObject(cli, "cli", {"env", "allowHosts", "promptVia"}));
  for (const char* key : {"env", "allowHosts"}) {
    if (cli.contains(key) && !isStringArray(cli[key])) {
      return invalidArgument(std::string("cli.") + key + " must be an array of strings");
    }
  }
  if (cli.contains("promptVia") && cli["promptVia"] != "argv" && cli["promptVia"] != "stdin") {
    return invalidArgument("cli.promptVia must be \"argv\" or \"stdin\"");
  }
  spec.cli = cli;
  return Status::ok();
}

bool isEnvName(std::string_view n) {
  if (n.empty() || n.size() > 128 || std::isdigit(static_cast<unsigned char>(n[0]))) return false;
  for (char c : n)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  return true;
}

// Why a PATH is refused ("" when it is fine): each entry must be an absolute, normalised
// directory of the sandbox (an empty, relative or `..` entry would run programs from the
// workspace or from wherever a command happens to be).
std::string badPath(std::string_view path) {
  size_t start = 0;
  while (true) {
    size_t end = path.find(':', start);
    std::string_view dir = path.substr(start, end == std::string_view::npos ? end : end - start);
    if (dir.empty() || dir[0] != '/') {
      return "entry '" + std::string(dir) + "' is not an absolute directory";
    }
    for (size_t i = 0; i < dir.size();) {
      size_t j = dir.find('/', i + 1);
      std::string_view part = dir.substr(i + 1, j == std::string_view::npos ? j : j - i - 1);
      if (part == "." || part == "..") {
        return "entry '" + std::string(dir) + "' leaves the directory tree with '" +
               std::string(part) + "'";
      }
      if (j == std::string_view::npos) break;
      i = j;
    }
    if (end == std::string_view::npos) return "";
    start = end + 1;
  }
}

Result<std::map<std::string, std::string>> parseEnv(const json& e, const std::string& where) {
  constexpr size_t kMaxVars = 64, kMaxValue = 8192;
  if (!e.is_object()) return invalidArgument(where + " must be an object of strings");
  if (e.size() > kMaxVars) {
    return invalidArgument(where + " may set at most " + std::to_string(kMaxVars) + " variables");
  }
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : e.items()) {
    if (!isEnvName(k)) {
      return invalidArgument(where + ": '" + k +
                             "' is not a variable name ([A-Za-z_][A-Za-z0-9_]*, at most 128)");
    }
    if (k.rfind("KILN_", 0) == 0) return invalidArgument(where + ": KILN_* names are kiln's own");
    if (!v.is_string() || v.get_ref<const std::string&>().size() > kMaxValue) {
      return invalidArgument(where + "." + k + " must be a string of at most 8192 bytes");
    }
    const std::string& value = v.get_ref<const std::string&>();
    if (value.find('\0') != std::string::npos) {
      return invalidArgument(where + "." + k + " must not contain a NUL byte");
    }
    if (k == "PATH") {
      if (std::string why = badPath(value); !why.empty()) {
        return invalidArgument(where + ".PATH must name directories inside the sandbox: " + why);
      }
    }
    out[k] = value;
  }
  return out;
}

// sandbox.workdir: a path kiln can make a mount point of, beside the sandbox's system dirs.
Status checkWorkdir(const std::string& dir, const std::string& where) {
  static const std::set<std::string> kSystemDirs = {
      "bin", "boot", "dev",  "etc", "home", "lib", "lib32", "lib64", "libx32",
      "opt", "proc", "root", "run", "sbin", "sys", "tmp",   "usr",   "var"};
  const std::string rule = where +
                           " must be an absolute path such as /testbed or /workspace: components "
                           "of letters, digits, '.', '_' and '-', at most 8, outside the system "
                           "dirs (/usr, /etc, /tmp, /home, ...)";
  if (dir.size() < 2 || dir.size() > 200 || dir[0] != '/' || dir.back() == '/') {
    return invalidArgument(rule + ", got \"" + dir + "\"");
  }
  std::vector<std::string> parts;
  for (size_t start = 1; start <= dir.size();) {
    size_t slash = dir.find('/', start);
    if (slash == std::string::npos) slash = dir.size();
    parts.push_back(dir.substr(start, slash - start));
    start = slash + 1;
  }
  for (const std::string& part : parts) {
    const bool ok = !part.empty() && part != "." && part != ".." &&
                    std::all_of(part.begin(), part.end(), [](unsigned char c) {
                      return std::isalnum(c) || c == '.' || c == '_' || c == '-';
                    });
    if (!ok) return invalidArgument(rule + ", got \"" + dir + "\"");
  }
  if (parts.size() > 8 || kSystemDirs.count(parts.front())) {
    return invalidArgument(rule + ", got \"" + dir + "\"");
  }
  return Status::ok();
}

Result<McpServerSpec> parseMcpServer(const json& m, const std::string& where) {
  RETURN_IF_ERROR(checkObject(m, where, {"name", "command", "env"}));
  McpServerSpec out;
  const json* name = m.contains("name") ? &m["name"] : nullptr;
  const bool nameOk =
      name && name->is_string() && !name->get_ref<const std::string&>().empty() &&
      name->get_ref<const std::string&>().size() <= 32 &&
      std::all_of(name->get_ref<const std::string&>().begin(),
                  name->get_ref<const std::string&>().end(), [](unsigned char c) {
                    return std::islower(c) || std::isdigit(c) || c == '_' || c == '-';
                  });
  if (!nameOk) {
    return invalidArgument(where + ".name must be 1 to 32 of a-z, 0-9, '_' and '-'");
  }
  out.name = name->get<std::string>();
  const json* command = m.contains("command") ? &m["command"] : nullptr;
  constexpr size_t kMaxArgs = 64, kMaxArg = 4096;
  bool commandOk = command && isStringArray(*command) && !command->empty() &&
                   command->size() <= kMaxArgs &&
                   !(*command)[0].get_ref<const std::string&>().empty();
  if (commandOk) {
    for (const auto& arg : *command) {
      const std::string& a = arg.get_ref<const std::string&>();
      commandOk = commandOk && a.size() <= kMaxArg && a.find('\0') == std::string::npos;
    }
  }
  if (!commandOk) {
    return invalidArgument(where +
                           ".command must be the server's argv: an array of 1 to 64 strings (the "
                           "first not empty), each at most 4096 bytes without NUL");
  }
  out.command = command->get<std::vector<std::string>>();
  if (auto e = m.find("env"); e != m.end() && !e->is_null()) {
    ASSIGN_OR_RETURN(out.env, parseEnv(*e, where + ".env"));
  }
  return out;
}

Status parseMcpServers(const json& list, JobSpec& spec) {
  if (!list.is_array() || list.size() > JobSpec::kMaxMcpServers) {
    return invalidArgument("mcpServers must be an array of at most " +
                           std::to_string(JobSpec::kMaxMcpServers) +
                           " servers ({name, command, env?})");
  }
  std::set<std::string> names;
  for (size_t i = 0; i < list.size(); ++i) {
    ASSIGN_OR_RETURN(McpServerSpec server,
                     parseMcpServer(list[i], "mcpServers[" + std::to_string(i) + "]"));
    if (!names.insert(server.name).second) {
      return invalidArgument("mcpServers: the name '" + server.name + "' is used twice");
    }
    spec.mcpServers.push_back(std::move(server));
  }
  return Status::ok();
}

Result<VerifySpec> parseVerify(const json& v) {
  RETURN_IF_ERROR(checkObject(v, "verify", {"command", "required", "maxRetries"}));
  VerifySpec out;
  std::optional<std::string> command;
  std::optional<bool> required;
  std::optional<int64_t> retries;
  RETURN_IF_ERROR(optionalString(v, "verify", "command", 16384, command));
  if (!command || command->find_first_not_of(" \t\n") == std::string::npos) {
    return invalidArgument("verify.command must be a non-empty shell command");
  }
  RETURN_IF_ERROR(optionalBool(v, "verify", "required", required));
  RETURN_IF_ERROR(optionalInt(v, "verify", "maxRetries", 0, 10, retries));
  out.command = *command;
  out.required = required.value_or(true);
  out.maxRetries = retries.value_or(2);
  return out;
}

}  // namespace

json VerifySpec::toJson() const {
  return {{"command", command}, {"required", required}, {"maxRetries", maxRetries}};
}

JobLimits JobLimits::withDefaults(const JobLimits& d) const {
  JobLimits out = *this;
  if (!out.maxSteps) out.maxSteps = d.maxSteps;
  if (!out.maxUsd) out.maxUsd = d.maxUsd;
  if (!out.maxTokens) out.maxTokens = d.maxTokens;
  if (!out.maxWallSeconds) out.maxWallSeconds = d.maxWallSeconds;
  if (!out.contextTokens) out.contextTokens = d.contextTokens;
  if (!out.commandTimeoutSeconds) out.commandTimeoutSeconds = d.commandTimeoutSeconds;
  return out;
}

json JobLimits::toJson() const {
  json out = json::object();
  if (maxSteps) out["maxSteps"] = *maxSteps;
  if (maxUsd) out["maxUsd"] = *maxUsd;
  if (maxTokens) out["maxTokens"] = *maxTokens;
  if (maxWallSeconds) out["maxWallSeconds"] = *maxWallSeconds;
  if (contextTokens) out["contextTokens"] = *contextTokens;
  if (commandTimeoutSeconds) out["commandTimeoutSeconds"] = *commandTimeoutSeconds;
  return out;
}

Result<JobLimits> parseJobLimits(const json& j, std::string_view where) {
  JobLimits l;
  if (j.is_null()) return l;
  RETURN_IF_ERROR(checkObject(j, where,
                              {"maxSteps", "maxUsd", "maxTokens", "maxWallSeconds", "contextTokens",
                               "commandTimeoutSeconds"}));
  RETURN_IF_ERROR(optionalInt(j, where, "maxSteps", 1, 100'000, l.maxSteps));
  RETURN_IF_ERROR(optionalNumber(j, where, "maxUsd", 0, 1e6, l.maxUsd));
  RETURN_IF_ERROR(optionalInt(j, where, "maxTokens", 1, int64_t{1} << 40, l.maxTokens));
  RETURN_IF_ERROR(optionalInt(j, where, "maxWallSeconds", 1, 30 * 86400, l.maxWallSeconds));
  RETURN_IF_ERROR(optionalInt(j, where, "contextTokens", 1000, int64_t{1} << 30, l.contextTokens));
  RETURN_IF_ERROR(
      optionalInt(j, where, "commandTimeoutSeconds", 1, 86400, l.commandTimeoutSeconds));
  return l;
}

json SandboxRequest::toJson() const {
  json s = json::object();
  if (!backend.empty()) s["backend"] = backend;
  if (cpus > 0) s["cpus"] = cpus;
  if (memoryMb > 0) s["memoryMb"] = memoryMb;
  if (diskMb > 0) s["diskMb"] = diskMb;
  if (network != "none") s["network"] = network;
  if (!allowHosts.empty()) s["allowHosts"] = allowHosts;
  if (!image.empty()) s["image"] = image;
  if (shell != "fresh") s["shell"] = shell;
  if (!env.empty()) s["env"] = env;
  if (workdir != "/workspace") s["workdir"] = workdir;
  if (user != "agent") s["user"] = user;
  return s;
}

Result<SandboxRequest> parseSandboxRequest(const json& j, std::string_view where) {
  SandboxRequest r;
  if (j.is_null()) return r;
  RETURN_IF_ERROR(checkObject(j, where,
                              {"backend", "cpus", "memoryMb", "diskMb", "network", "allowHosts",
                               "image", "shell", "env", "workdir", "user"}));
  std::optional<std::string> backend, network, image, shell, workdir, user;
  std::optional<double> cpus;
  std::optional<int64_t> memory, disk;
  RETURN_IF_ERROR(optionalString(j, where, "backend", kMaxName, backend));
  RETURN_IF_ERROR(optionalNumber(j, where, "cpus", 0.01, 1024, cpus));
  RETURN_IF_ERROR(optionalInt(j, where, "memoryMb", 16, 1 << 22, memory));
  RETURN_IF_ERROR(optionalInt(j, where, "diskMb", 1, 1 << 24, disk));
  RETURN_IF_ERROR(optionalString(j, where, "network", kMaxName, network));
  RETURN_IF_ERROR(optionalString(j, where, "image", kMaxName, image));
  RETURN_IF_ERROR(optionalString(j, where, "shell", kMaxName, shell));
  RETURN_IF_ERROR(optionalString(j, where, "workdir", kMaxName, workdir));
  RETURN_IF_ERROR(optionalString(j, where, "user", kMaxName, user));
  if (workdir) RETURN_IF_ERROR(checkWorkdir(*workdir, fieldPath(where, "workdir")));
  if (user && *user != "agent" && *user != "root") {
    return invalidArgument(fieldPath(where, "user") +
                           " must be \"agent\" (uid 1000) or \"root\" (root inside the sandbox, "
                           "without capabilities over the host)");
  }
  if (shell && *shell != "fresh" && *shell != "login" && *shell != "session") {
    return invalidArgument(fieldPath(where, "shell") +
                           " must be \"fresh\" (bash -c per command), \"login\" (bash -lc per "
                           "command) or \"session\" (one persistent bash per job)");
  }
  if (backend && *backend == "ns") backend = "namespace";  // the older name
  if (backend && *backend != "namespace" && *backend != "gvisor") {
    return invalidArgument(fieldPath(where, "backend") + " must be \"namespace\" or \"gvisor\"");
  }
  if (backend && *backend == "gvisor" && disk) {
    return invalidArgument(fieldPath(where, "diskMb") +
                           ": the gvisor backend has no disk quota (writes outside /workspace "
                           "are memory: set memoryMb)");
  }
  if (network && *network == "egress") network = "allowlist";  // the older name
  if (network && *network != "none" && *network != "allowlist") {
    return invalidArgument(fieldPath(where, "network") + " must be \"none\" or \"allowlist\"");
  }
  auto hosts = j.find("allowHosts");
  if (hosts != j.end() && !hosts->is_null()) {
    if (!isStringArray(*hosts)) {
      return invalidArgument(fieldPath(where, "allowHosts") + " must be an array of host names");
    }
    r.allowHosts = hosts->get<std::vector<std::string>>();
  }
  r.backend = backend.value_or("");
  r.cpus = cpus.value_or(0);
  r.memoryMb = memory.value_or(0);
  r.diskMb = disk.value_or(0);
  r.network = network.value_or("none");
  r.image = image.value_or("");
  r.shell = shell.value_or("fresh");
  r.workdir = workdir.value_or("/workspace");
  r.user = user.value_or("agent");
  if (auto e = j.find("env"); e != j.end() && !e->is_null()) {
    ASSIGN_OR_RETURN(r.env, parseEnv(*e, fieldPath(where, "env")));
  }
  return r;
}

bool Approvals::covers(std::string_view gate) const {
  if (all) return true;
  for (const auto& g : gates)
    if (g == gate) return true;
  return false;
}

Approvals JobSpec::gates() const {
  Approvals a;
  if (!approvals) return a;
  if (approvals->is_boolean()) a.all = approvals->get<bool>();
  if (approvals->is_array()) a.gates = approvals->get<std::vector<std::string>>();
  return a;
}

json JobSpec::toJson() const {
  json spec = json::object();
  if (sandbox) spec["sandbox"] = sandbox->toJson();
  if (approvals) spec["approvals"] = *approvals;
  if (push) spec["push"] = true;
  if (stream) spec["stream"] = *stream;
  if (command) spec["command"] = *command;
  if (cli) spec["cli"] = *cli;
  if (verify) spec["verify"] = verify->toJson();
  if (!mcpServers.empty()) {
    json servers = json::array();
    for (const McpServerSpec& m : mcpServers) servers.push_back(m.toJson());
    spec["mcpServers"] = std::move(servers);
  }
  return spec;
}

json McpServerSpec::toJson() const {
  json m = {{"name", name}, {"command", command}};
  if (!env.empty()) m["env"] = env;
  return m;
}

Result<JobSpec> parseJobSpec(const json& j) {
  JobSpec spec;
  if (j.is_null()) return spec;
  if (!j.is_object()) return invalidArgument("the job spec must be a JSON object");
  if (auto it = j.find("sandbox"); it != j.end() && !it->is_null()) {
    ASSIGN_OR_RETURN(spec.sandbox, parseSandboxRequest(*it, "sandbox"));
  }
  if (auto it = j.find("approvals"); it != j.end() && !it->is_null()) {
    if (!it->is_boolean() && !isStringArray(*it)) {
      return invalidArgument("approvals must be true/false or an array of strings");
    }
    spec.approvals = *it;
  }
  std::optional<bool> push;
  RETURN_IF_ERROR(optionalBool(j, "", "push", push));
  spec.push = push.value_or(false);
  RETURN_IF_ERROR(optionalBool(j, "", "stream", spec.stream));
  if (auto it = j.find("command"); it != j.end() && !it->is_null()) {
    if (!it->is_string() && !isStringArray(*it)) {
      return invalidArgument("command must be a string or an array of strings");
    }
    spec.command = *it;
  }
  // Agent CLI options (src/agent/cli_agent.h checks the names and hosts when the job starts).
  if (auto it = j.find("cli"); it != j.end() && !it->is_null())
    RETURN_IF_ERROR(parseCli(*it, spec));
  if (auto it = j.find("verify"); it != j.end() && !it->is_null()) {
    ASSIGN_OR_RETURN(spec.verify, parseVerify(*it));
  }
  if (auto it = j.find("mcpServers"); it != j.end() && !it->is_null())
    RETURN_IF_ERROR(parseMcpServers(*it, spec));
  return spec;
}

}  // namespace kiln::api::request

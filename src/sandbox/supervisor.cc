#include "sandbox/supervisor.h"

#include <unistd.h>

#include <random>
#include <sstream>

namespace kiln::sandbox {
namespace {

// Pool sandbox ids: w<random>-<pool>-<n>, unique across nodes sharing a state dir.
std::string poolIdPrefix(size_t pool) {
  static const char kHex[] = "0123456789abcdef";
  std::random_device rd;
  std::string tag;
  for (int i = 0; i < 6; ++i) tag += kHex[rd() % 16];
  return "w" + tag + "-" + std::to_string(pool) + "-";
}

std::string escapeLabel(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    out += c == '\n' ? 'n' : c;
  }
  return out;
}

}  // namespace

Result<std::unique_ptr<Supervisor>> Supervisor::start(SupervisorOptions opts) {
  std::unique_ptr<Supervisor> s(new Supervisor());
  s->defaultBackend_ = opts.defaultBackend;
  ASSIGN_OR_RETURN(s->backends_[kNamespaceBackend], newNamespaceBackend(opts.ns));
  Result<std::unique_ptr<SandboxBackend>> gvisor = newGvisorBackend(opts.gvisor);
  if (gvisor) {
    s->backends_[kGvisorBackend] = std::move(gvisor).value();
  } else {
    s->unavailable_[kGvisorBackend] = gvisor.status().message();
  }
  if (Status st = s->check(opts.defaultBackend); !st) {
    return Status(st.code(), "--sandbox-backend: " + st.message());
  }
  for (const WarmPoolConfig& config : opts.pools) {
    const std::string name = config.backend + (config.image.empty() ? "" : ":" + config.image) +
                             "=" + std::to_string(config.size);
    if (Status st = s->check(config.backend); !st) {
      return Status(st.code(), "warm pool " + name + ": " + st.message());
    }
    auto pool = std::make_unique<WarmPool>(*s->backends_.at(config.backend), config,
                                           poolIdPrefix(s->pools_.size()));
    if (Status st = pool->start(); !st) {
      return Status(st.code(), "warm pool " + name + " cannot be filled: " + st.message());
    }
    s->pools_.push_back(std::move(pool));
  }
  return s;
}

Supervisor::~Supervisor() { pools_.clear(); }

Status Supervisor::check(const std::string& backend) const {
  const std::string& name = backend.empty() ? defaultBackend_ : backend;
  if (backends_.count(name)) return Status::ok();
  if (auto it = unavailable_.find(name); it != unavailable_.end()) {
    return Status(Code::kUnprocessable,
                  "sandbox backend \"" + name + "\" cannot run on this node: " + it->second);
  }
  return invalidArgument("unknown sandbox backend \"" + name + "\" (namespace or gvisor)");
}

Status Supervisor::check(const std::string& backend, bool rootInside) const {
  RETURN_IF_ERROR(check(backend));
  const std::string& name = backend.empty() ? defaultBackend_ : backend;
  if (rootInside && !backends_.at(name)->rootIsUnprivileged()) {
    return Status(Code::kUnprocessable,
                  "sandbox.user \"root\" on the " + name +
                      " backend needs a user namespace for each sandbox, so that root inside is "
                      "not root on the host: start kiln serve with --sandbox-userns, or ask for "
                      "sandbox.backend \"gvisor\"");
  }
  return Status::ok();
}

SandboxBackend* Supervisor::backend(const std::string& name) const {
  auto it = backends_.find(name);
  return it == backends_.end() ? nullptr : it->second.get();
}

Result<std::unique_ptr<Sandbox>> Supervisor::acquire(const std::string& backend,
                                                     const SandboxSpec& spec) {
  RETURN_IF_ERROR(check(backend, spec.rootInside));
  const std::string& name = backend.empty() ? defaultBackend_ : backend;
  for (auto& pool : pools_) {
    if (pool->config().backend != name || !pool->fits(spec)) continue;
    auto taken = pool->take(spec);
    if (taken && taken->isOk()) return std::move(*taken);
    // A miss, or a pooled sandbox that could not take the workspace (destroyed by take()):
    // created cold below, so that one bad idle sandbox fails no job.
    break;
  }
  return backends_.at(name)->create(spec);
}

std::vector<std::string> Supervisor::limitations() const {
  std::vector<std::string> out;
  for (const auto& [name, backend] : backends_) {
    for (const std::string& l : backend->limitations()) out.push_back(l);
  }
  for (const auto& [name, why] : unavailable_) {
    out.push_back("sandbox backend " + name + " is unavailable: " + why);
  }
  return out;
}

std::string Supervisor::renderMetrics() const {
  std::ostringstream out;
  struct Series {
    const char* name;
    const char* type;
    const char* help;
  };
  const Series series[] = {
      {"kiln_warm_pool_size", "gauge", "Configured size of the warm pool."},
      {"kiln_warm_pool_idle", "gauge", "Started sandboxes waiting in the warm pool."},
      {"kiln_warm_pool_hits_total", "counter", "Jobs that took a sandbox from the warm pool."},
      {"kiln_warm_pool_misses_total", "counter",
       "Jobs that fit the warm pool but found it empty (their sandbox started cold)."},
  };
  for (size_t i = 0; i < std::size(series); ++i) {
    out << "# HELP " << series[i].name << " " << series[i].help << "\n# TYPE " << series[i].name
        << " " << series[i].type << "\n";
    for (const auto& pool : pools_) {
      const WarmPoolStats st = pool->stats();
      const uint64_t values[] = {static_cast<uint64_t>(st.size), static_cast<uint64_t>(st.idle),
                                 st.hits, st.misses};
      out << series[i].name << "{backend=\"" << escapeLabel(pool->config().backend) << "\",image=\""
          << escapeLabel(pool->config().image) << "\"} " << values[i] << "\n";
    }
  }
  return out.str();
}

}  // namespace kiln::sandbox

#include "secrets/redact.h"

#include <algorithm>

namespace kiln::secrets {

Redactions::Redactions(const std::vector<Secret>& secrets) {
  for (const auto& s : secrets) {
    if (!s.value.empty()) values_.emplace_back(s.value, "[redacted:" + s.name + "]");
  }
  sort();
}

void Redactions::sort() {
  std::stable_sort(values_.begin(), values_.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
}

void Redactions::merge(const Redactions& other) {
  for (const auto& v : other.values_) {
    if (std::find(values_.begin(), values_.end(), v) == values_.end()) values_.push_back(v);
  }
  sort();
}

void Redactions::apply(std::string& text) const {
  for (const auto& [value, marker] : values_) {
    for (size_t at = text.find(value); at != std::string::npos;
         at = text.find(value, at + marker.size())) {
      text.replace(at, value.size(), marker);
    }
  }
}

void Redactions::apply(nlohmann::json& j) const {
  if (values_.empty()) return;
  if (j.is_string()) {
    apply(j.get_ref<std::string&>());
  } else if (j.is_array()) {
    for (auto& e : j) apply(e);
  } else if (j.is_object()) {
    // Keys too: a model may put anything in its call's argument names.
    nlohmann::json out = nlohmann::json::object();
    for (auto& [key, value] : j.items()) {
      std::string k = key;
      apply(k);
      apply(value);
      out[k] = std::move(value);
    }
    j = std::move(out);
  }
}

LiveSecrets& LiveSecrets::process() {
  static LiveSecrets* live = new LiveSecrets();  // never destroyed: log lines at exit use it
  return *live;
}

std::optional<Redactions> LiveSecrets::find(const std::string& jobId) const {
  std::lock_guard lock(mu_);
  auto it = jobs_.find(jobId);
  if (it == jobs_.end()) return std::nullopt;
  return it->second;
}

void LiveSecrets::put(const std::string& jobId, Redactions r) {
  std::lock_guard lock(mu_);
  if (jobs_.count(jobId)) return;
  all_.merge(r);
  jobs_.emplace(jobId, std::move(r));
  order_.push_back(jobId);
  if (order_.size() > kMaxJobs) {
    jobs_.erase(order_.front());
    order_.pop_front();
    // The merged set keeps the dropped job's values: log lines stay redacted for the process's
    // life, a few bytes per secret.
  }
}

Redactions LiveSecrets::all() const {
  std::lock_guard lock(mu_);
  return all_;
}

}  // namespace kiln::secrets

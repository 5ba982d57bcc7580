// Redaction of secret values from everything kiln keeps or prints. `Redactions` is one job's
// values (pure value type); `LiveSecrets` is the process's registry of the values of the jobs
// it has touched, filled by the RedactingStore (store/redacting_store.h) and read by the log
// sink (secrets/log_sink.h). LiveSecrets is thread-safe.
#pragma once
#include <cstddef>
#include <deque>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "secrets/secrets.h"

namespace kiln::secrets {

class Redactions {
 public:
  // Shorter values are redacted only as they are: encoded forms of a few bytes would match
  // ordinary text.
  static constexpr size_t kMinEncodedBytes = 8;

  Redactions() = default;
  explicit Redactions(const std::vector<Secret>& secrets);
  bool empty() const { return values_.empty(); }
  // Every occurrence of a value becomes "[redacted:NAME]" (longest values first, so a value
  // that holds another is replaced whole), and so do, for values of kMinEncodedBytes or more,
  // their hex (either case) and base64 (standard or URL-safe, at any alignment: the digits that
  // depend on the value alone; up to two digits at each end, a few bits of the value's first
  // and last bytes, stay) forms. Other encodings, and base64 broken across lines (`base64`
  // wraps at 76 digits, a value of 58 bytes or more), are not recognised.
  void apply(std::string& text) const;
  // apply() on every string and object key of `j`, recursively.
  void apply(nlohmann::json& j) const;
  // How many bytes at the end of `text` begin a value (or a form apply() knows) without
  // completing it: what a stream of chunks holds back until the next chunk, so a value split
  // between two chunks is still seen whole. 0 when none.
  size_t partialAtEnd(std::string_view text) const;
  // Adds another set's values.
  void merge(const Redactions& other);

 private:
  void sort();
  std::vector<std::pair<std::string, std::string>> values_;  // value, marker
};

class LiveSecrets {
 public:
  // The process's one registry (its log sink and its stores share it).
  static LiveSecrets& process();

  // The values of `jobId`, if known.
  std::optional<Redactions> find(const std::string& jobId) const;
  // Records a job's values (none is remembered too, to skip the lookup next time). The oldest
  // entries are dropped beyond kMaxJobs.
  void put(const std::string& jobId, Redactions r);
  // The values of every job known: for log lines, which name no job.
  Redactions all() const;

  static constexpr size_t kMaxJobs = 4096;

 private:
  mutable std::mutex mu_;
  std::map<std::string, Redactions> jobs_;  // GUARDED_BY(mu_)
  std::deque<std::string> order_;           // GUARDED_BY(mu_): insertion order
  Redactions all_;                          // GUARDED_BY(mu_)
};

}  // namespace kiln::secrets

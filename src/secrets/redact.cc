#include "secrets/redact.h"

#include <algorithm>
#include <cstdint>

namespace kiln::secrets {
namespace {

constexpr std::string_view kBase64Digits =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// Standard base64 without padding (a core never reaches it) or line breaks.
std::string base64Of(std::string_view in) {
  std::string out;
  for (size_t i = 0; i < in.size(); i += 3) {
    uint32_t n = static_cast<uint8_t>(in[i]) << 16;
    if (i + 1 < in.size()) n |= static_cast<uint8_t>(in[i + 1]) << 8;
    if (i + 2 < in.size()) n |= static_cast<uint8_t>(in[i + 2]);
    const size_t digits = std::min<size_t>(4, in.size() - i + 1);
    for (size_t d = 0; d < digits; ++d) out += kBase64Digits[(n >> (18 - 6 * d)) & 63];
  }
  return out;
}

std::string hexOf(std::string_view in, const char* digits) {
  std::string out;
  for (unsigned char c : in) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

// The base64 digits that depend on `value`'s bytes alone, when the encoded text holds `value`
// starting `offset` bytes into a 3-byte group: whatever comes before and after it, these digits
// are in the encoding. Digit j of group g encodes bits of bytes 3g..3g+2: j=0 byte 0, j=1 bytes
// 0-1, j=2 bytes 1-2, j=3 byte 2.
std::string base64Core(const std::string& value, size_t offset) {
  const std::string enc = base64Of(std::string(offset, '\0') + value + std::string(2, '\0'));
  static constexpr size_t kFirstByte[] = {0, 0, 1, 2}, kLastByte[] = {0, 1, 2, 2};
  size_t first = std::string::npos, last = 0;
  for (size_t c = 0; c < enc.size(); ++c) {
    const size_t lo = 3 * (c / 4) + kFirstByte[c % 4], hi = 3 * (c / 4) + kLastByte[c % 4];
    if (lo < offset || hi >= offset + value.size()) continue;
    if (first == std::string::npos) first = c;
    last = c;
  }
  return first == std::string::npos ? "" : enc.substr(first, last - first + 1);
}

}  // namespace

Redactions::Redactions(const std::vector<Secret>& secrets) {
  for (const auto& s : secrets) {
    if (s.value.empty()) continue;
    const std::string marker = "[redacted:" + s.name + "]";
    values_.emplace_back(s.value, marker);
    if (s.value.size() < kMinEncodedBytes) continue;
    // What hex dumps (`xxd -p`, `.hex()`) and base64 (standard or URL-safe) make of it.
    std::vector<std::string> forms = {hexOf(s.value, "0123456789abcdef"),
                                      hexOf(s.value, "0123456789ABCDEF")};
    for (size_t offset = 0; offset < 3; ++offset) {
      std::string core = base64Core(s.value, offset);
      std::string urlSafe = core;
      std::replace(urlSafe.begin(), urlSafe.end(), '+', '-');
      std::replace(urlSafe.begin(), urlSafe.end(), '/', '_');
      forms.push_back(std::move(core));
      if (urlSafe != forms.back()) forms.push_back(std::move(urlSafe));
    }
    for (auto& form : forms) {
      std::pair<std::string, std::string> v(std::move(form), marker);
      if (std::find(values_.begin(), values_.end(), v) == values_.end())
        values_.push_back(std::move(v));
    }
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

size_t Redactions::partialAtEnd(std::string_view text) const {
  size_t longest = 0;
  for (const auto& [value, marker] : values_) {
    // The longest proper prefix of `value` that `text` ends with.
    for (size_t n = std::min(value.size() - 1, text.size()); n > longest; --n) {
      if (text.substr(text.size() - n) == std::string_view(value).substr(0, n)) {
        longest = n;
        break;
      }
    }
  }
  return longest;
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

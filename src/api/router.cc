#include "api/router.h"

namespace kiln::api {
namespace {

std::vector<std::string> splitPath(std::string_view path) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '/') {
      ++i;
      continue;
    }
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    out.emplace_back(path.substr(i, j - i));
    i = j;
  }
  return out;
}

bool isParam(const std::string& seg) {
  return seg.size() >= 2 && seg.front() == '{' && seg.back() == '}';
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

const std::string& Request::param(const std::string& name) const {
  static const std::string kEmpty;
  auto it = params.find(name);
  return it == params.end() ? kEmpty : it->second;
}

std::string Request::queryValue(const std::string& name) const {
  auto it = query.find(name);
  return it == query.end() ? "" : it->second;
}

std::optional<StreamSlots::Slot> StreamSlots::tryAcquire(const std::string& key, int max) {
  std::lock_guard lock(mu_);
  int& n = open_[key];
  if (n >= max) return std::nullopt;
  ++n;
  return Slot(*this, key);
}

void StreamSlots::release(const std::string& key) {
  std::lock_guard lock(mu_);
  auto it = open_.find(key);
  if (it != open_.end() && --it->second <= 0) open_.erase(it);
}

void Router::add(http::verb method, std::string_view pattern, Access access, Handler h) {
  routes_.push_back({method, splitPath(pattern), access, std::move(h)});
}

Router::Match Router::match(http::verb method, std::string_view path) const {
  Match m;
  auto segs = splitPath(path);
  for (const auto& r : routes_) {
    if (r.segments.size() != segs.size()) continue;
    std::map<std::string, std::string> params;
    bool ok = true;
    for (size_t i = 0; i < segs.size() && ok; ++i) {
      if (isParam(r.segments[i])) {
        params[r.segments[i].substr(1, r.segments[i].size() - 2)] = segs[i];
      } else {
        ok = r.segments[i] == segs[i];
      }
    }
    if (!ok) continue;
    if (r.method == method) {
      m.kind = MatchKind::kFound;
      m.handler = &r.handler;
      m.access = r.access;
      m.params = std::move(params);
      return m;
    }
    m.kind = MatchKind::kMethodNotAllowed;
    if (!m.allow.empty()) m.allow += ", ";
    m.allow += std::string(http::to_string(r.method));
  }
  return m;
}

std::string percentDecode(std::string_view s, bool plusIsSpace, bool* ok) {
  std::string out;
  out.reserve(s.size());
  *ok = true;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '+' && plusIsSpace) {
      out += ' ';
    } else if (c == '%') {
      int hi = i + 1 < s.size() ? hexValue(s[i + 1]) : -1;
      int lo = i + 2 < s.size() ? hexValue(s[i + 2]) : -1;
      if (hi < 0 || lo < 0) {
        *ok = false;
        return out;
      }
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

bool splitTarget(std::string_view target, std::string& path,
                 std::map<std::string, std::string>& query) {
  size_t q = target.find('?');
  bool ok = true;
  path = percentDecode(target.substr(0, q), false, &ok);
  if (!ok) return false;
  if (q == std::string_view::npos) return true;
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    size_t amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    size_t eq = pair.find('=');
    std::string key = percentDecode(pair.substr(0, eq), true, &ok);
    if (!ok) return false;
    std::string value;
    if (eq != std::string_view::npos) {
      value = percentDecode(pair.substr(eq + 1), true, &ok);
      if (!ok) return false;
    }
    if (!key.empty()) query[key] = value;
    if (amp == std::string_view::npos) break;
    rest = rest.substr(amp + 1);
  }
  return true;
}

}  // namespace kiln::api

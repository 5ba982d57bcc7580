#include "sandbox/pool.h"

#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <chrono>

namespace kiln::sandbox {
namespace {

// After a failed start the filler waits before the next, doubling up to the maximum.
constexpr auto kFirstBackoff = std::chrono::milliseconds(500);
constexpr auto kMaxBackoff = std::chrono::seconds(30);

}  // namespace

Result<WarmPoolConfig> parseWarmPool(const std::string& text) {
  const size_t eq = text.rfind('=');
  if (eq == std::string::npos || eq == 0) {
    return invalidArgument("warm pool \"" + text + "\": expected BACKEND[:IMAGE]=N");
  }
  WarmPoolConfig c;
  const std::string key = text.substr(0, eq), count = text.substr(eq + 1);
  const size_t colon = key.find(':');
  c.backend = key.substr(0, colon);
  if (colon != std::string::npos) c.image = key.substr(colon + 1);
  if (c.backend != "namespace" && c.backend != "gvisor") {
    return invalidArgument("warm pool \"" + text + "\": unknown backend \"" + c.backend +
                           "\" (namespace or gvisor)");
  }
  if (colon != std::string::npos && c.image.empty()) {
    return invalidArgument("warm pool \"" + text + "\": empty image name");
  }
  if (count.empty() || count.size() > 4 ||
      !std::all_of(count.begin(), count.end(), [](char ch) { return ch >= '0' && ch <= '9'; })) {
    return invalidArgument("warm pool \"" + text + "\": N must be a number");
  }
  c.size = std::stoi(count);
  if (c.size < 1 || c.size > kMaxWarmPoolSize) {
    return invalidArgument("warm pool \"" + text + "\": N must be 1.." +
                           std::to_string(kMaxWarmPoolSize));
  }
  return c;
}

WarmPool::WarmPool(SandboxBackend& backend, WarmPoolConfig config, std::string idPrefix)
    : backend_(backend), config_(std::move(config)), idPrefix_(std::move(idPrefix)) {}

WarmPool::~WarmPool() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (filler_.joinable()) filler_.join();
  std::deque<std::unique_ptr<Sandbox>> idle;
  {
    std::lock_guard lock(mu_);
    idle.swap(idle_);
  }
  for (auto& sb : idle) (void)sb->destroy();
}

Result<std::unique_ptr<Sandbox>> WarmPool::startOne() {
  SandboxSpec spec;
  {
    std::lock_guard lock(mu_);
    spec.id = idPrefix_ + std::to_string(++started_);
  }
  spec.image = config_.image;
  return backend_.startIdle(spec);
}

Status WarmPool::start() {
  Result<std::unique_ptr<Sandbox>> first = startOne();
  if (!first) return first.status();
  {
    std::lock_guard lock(mu_);
    idle_.push_back(std::move(first).value());
  }
  filler_ = std::thread([this] { fillLoop(); });
  return Status::ok();
}

std::optional<std::chrono::milliseconds> WarmPool::refillDelay() const {
  using namespace std::chrono;
  if (static_cast<int>(idle_.size()) >= config_.size || taking_ > 0) return milliseconds(0);
  if (idle_.empty()) return std::nullopt;
  const auto quietUntil = lastTake_ + milliseconds(kRefillQuietMs);
  const auto now = steady_clock::now();
  if (now >= quietUntil) return std::nullopt;
  return std::max(milliseconds(1), duration_cast<milliseconds>(quietUntil - now));
}

void WarmPool::fillLoop() {
  // Linux: PRIO_PROCESS with 0 is this thread; the sandboxes it starts inherit the niceness
  // (each gets the base one back once ready). Best effort: at worst refills compete.
  errno = 0;
  const int baseNice = getpriority(PRIO_PROCESS, 0);
  const bool niced = errno == 0 && setpriority(PRIO_PROCESS, 0, baseNice + kFillerNice) == 0;
  auto backoff = std::chrono::milliseconds(0);
  std::unique_lock lock(mu_);
  while (!stopping_) {
    if (backoff.count() > 0) {
      wake_.wait_for(lock, backoff, [this] { return stopping_; });
      if (stopping_) break;
    }
    if (static_cast<int>(idle_.size()) >= config_.size) changed_.notify_all();
    if (std::optional<std::chrono::milliseconds> delay = refillDelay()) {
      if (delay->count() == 0) {
        wake_.wait(lock, [this] { return stopping_ || !refillDelay() || refillDelay()->count(); });
      } else {
        wake_.wait_for(lock, *delay, [this] { return stopping_; });
      }
      continue;
    }
    lock.unlock();
    Result<std::unique_ptr<Sandbox>> sb = startOne();
    if (sb && niced) {
      if (Status st = (*sb)->renice(baseNice); !st) {
        (void)(*sb)->destroy();
        sb = Result<std::unique_ptr<Sandbox>>(st);
      }
    }
    lock.lock();
    if (!sb) {
      lastError_ = sb.status();
      backoff = std::min<std::chrono::milliseconds>(kMaxBackoff,
                                                    backoff.count() ? backoff * 2 : kFirstBackoff);
      continue;
    }
    backoff = std::chrono::milliseconds(0);
    lastError_.reset();
    if (stopping_) {
      lock.unlock();
      (void)(*sb)->destroy();
      lock.lock();
      break;
    }
    idle_.push_back(std::move(sb).value());
    changed_.notify_all();
  }
}

bool WarmPool::fits(const SandboxSpec& spec) const {
  // A CLI agent's gateway and CLI mounts are made at start: such a sandbox is created cold.
  return spec.image == config_.image && spec.network == "none" && !spec.rootInside &&
         spec.diskMb == 0 && spec.workdir == "/workspace" && spec.gatewayDir.empty() && spec.agentCliDir.empty();
}

std::optional<Result<std::unique_ptr<Sandbox>>> WarmPool::take(const SandboxSpec& spec) {
  std::unique_ptr<Sandbox> sb;
  {
    std::lock_guard lock(mu_);
    if (idle_.empty()) {
      ++misses_;
      return std::nullopt;
    }
    sb = std::move(idle_.front());
    idle_.pop_front();
    ++hits_;
    ++taking_;
  }
  Status st = sb->attach(spec);
  {
    std::lock_guard lock(mu_);
    --taking_;
    lastTake_ = std::chrono::steady_clock::now();
  }
  wake_.notify_all();
  if (!st) {
    (void)sb->destroy();
    return Result<std::unique_ptr<Sandbox>>(st);
  }
  return Result<std::unique_ptr<Sandbox>>(std::move(sb));
}

bool WarmPool::waitFull(int timeoutMs) {
  std::unique_lock lock(mu_);
  return changed_.wait_for(lock, std::chrono::milliseconds(timeoutMs),
                           [this] { return static_cast<int>(idle_.size()) >= config_.size; });
}

WarmPoolStats WarmPool::stats() const {
  std::lock_guard lock(mu_);
  return {config_.size, static_cast<int>(idle_.size()), hits_, misses_};
}

std::optional<Status> WarmPool::lastError() const {
  std::lock_guard lock(mu_);
  return lastError_;
}

}  // namespace kiln::sandbox

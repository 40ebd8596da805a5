#include "service/remote/auth_throttle.h"

#include <algorithm>

namespace kiln::service {

namespace {
constexpr auto kForgetAfter = std::chrono::minutes(15);
}

AuthThrottle::AuthThrottle(std::chrono::milliseconds first_delay, std::chrono::milliseconds max_delay)
    : first_(first_delay), max_(max_delay) {}

std::optional<std::chrono::milliseconds> AuthThrottle::wait_left(const std::string& address, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(address);
  if (it == entries_.end()) return std::nullopt;
  if (now - it->second.last_failure > kForgetAfter) {
    entries_.erase(it);
    return std::nullopt;
  }
  if (now >= it->second.next_allowed) return std::nullopt;
  return std::chrono::duration_cast<std::chrono::milliseconds>(it->second.next_allowed - now) + std::chrono::milliseconds(1);
}

AuthThrottle::Failure AuthThrottle::failed(const std::string& address, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  // Forget quiet addresses, so the table stays small.
  for (auto it = entries_.begin(); it != entries_.end();)
    it = now - it->second.last_failure > kForgetAfter ? entries_.erase(it) : std::next(it);
  Entry& e = entries_[address];
  e.failures = std::min(e.failures + 1, 30);
  auto delay = first_;
  for (int i = 1; i < e.failures && delay < max_; ++i) delay *= 2;
  delay = std::min(delay, max_);
  e.last_failure = now;
  e.next_allowed = now + delay;
  return {e.failures, delay};
}

std::string address_of_peer(const std::string& peer) {
  if (!peer.empty() && peer.front() == '[') {
    const auto close = peer.find(']');
    return close == std::string::npos ? peer : peer.substr(1, close - 1);
  }
  const auto colon = peer.rfind(':');
  return colon == std::string::npos ? peer : peer.substr(0, colon);
}

}  // namespace kiln::service

#pragma once
// Slows down guessing: every failed token from an address makes that address wait before its
// next attempt is even looked at (0.5 s, then 1, 2, 4 ... up to a minute; forgotten after 15
// quiet minutes). An attempt made while the address waits is refused without checking the token,
// so a guesser gets at most one answer per wait, however many connections it opens.
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>

namespace kiln::service {

class AuthThrottle {
 public:
  using Clock = std::chrono::steady_clock;
  explicit AuthThrottle(std::chrono::milliseconds first_delay = std::chrono::milliseconds(500),
                        std::chrono::milliseconds max_delay = std::chrono::seconds(60));

  // How long `address` must still wait before an attempt is considered (nullopt: it may try now).
  std::optional<std::chrono::milliseconds> wait_left(const std::string& address, Clock::time_point now = Clock::now());
  struct Failure {
    int count;                        // failed attempts from this address lately
    std::chrono::milliseconds delay;  // what it must wait now
  };
  Failure failed(const std::string& address, Clock::time_point now = Clock::now());

 private:
  struct Entry {
    int failures = 0;
    Clock::time_point next_allowed, last_failure;
  };
  std::chrono::milliseconds first_, max_;
  std::mutex mutex_;
  std::map<std::string, Entry> entries_;
};

// The address part of "1.2.3.4:5678" or "[::1]:5678" (throttling is per address, not per port).
std::string address_of_peer(const std::string& peer);

}  // namespace kiln::service

#include "cli/output.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <iostream>

namespace kiln::cli {

bool stdout_is_terminal() { return ::isatty(STDOUT_FILENO) == 1; }

void print_json(const Json& value) { std::cout << value.dump(2, ' ', false, Json::error_handler_t::replace) << "\n"; }

void print_error(const std::string& message) { std::cerr << "kiln: error: " << message << "\n"; }

std::string format_duration(double seconds) {
  if (!(seconds >= 0) || !std::isfinite(seconds)) return "?";
  auto s = static_cast<long long>(std::llround(seconds));
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, (s / 60) % 60, s % 60);
  else std::snprintf(buf, sizeof buf, "%lld:%02lld", s / 60, s % 60);
  return buf;
}

std::string format_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", bytes, units[u]);
  return buf;
}

std::string progress_line(const Json& p, int width) {
  const double fraction = std::clamp(p.value("fraction", 0.0), 0.0, 1.0);
  const int filled = static_cast<int>(std::lround(fraction * width));
  std::string line = "[" + std::string(filled, '#') + std::string(width - filled, '-') + "]";
  char buf[64];
  std::snprintf(buf, sizeof buf, " %3d%%", static_cast<int>(std::floor(fraction * 100)));
  line += buf;
  const int64_t total = p.value("total", int64_t{0});
  if (total > 0) line += "  step " + std::to_string(p.value("step", int64_t{0})) + "/" + std::to_string(total);
  if (double rate = p.value("steps_per_s", 0.0); rate > 0) {
    std::snprintf(buf, sizeof buf, rate >= 1 ? "  %.1f it/s" : "  %.2f s/it", rate >= 1 ? rate : 1.0 / rate);
    line += buf;
  }
  if (double eta = p.value("eta_s", -1.0); eta >= 0) line += "  ETA " + format_duration(eta);
  if (std::string message = p.value("message", ""); !message.empty()) line += "  " + message;
  return line;
}

void ProgressPrinter::update(const std::string& line, bool force) {
  const double now = std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  if (tty_) {
    if (!force && now - last_print_ < 0.05) return;
    std::string padded = line;
    if (padded.size() < last_width_) padded += std::string(last_width_ - padded.size(), ' ');
    std::cout << "\r" << padded << std::flush;
    last_width_ = line.size();
  } else {
    // Logs and pipes get a line every few seconds rather than a flood.
    if (!force && now - last_print_ < 2.0) return;
    std::cout << line << "\n" << std::flush;
  }
  last_print_ = now;
}

void ProgressPrinter::finish(const std::string& final_line) {
  if (tty_) {
    std::string padded = final_line;
    if (padded.size() < last_width_) padded += std::string(last_width_ - padded.size(), ' ');
    std::cout << "\r" << padded << "\n" << std::flush;
  } else {
    std::cout << final_line << "\n" << std::flush;
  }
  last_width_ = 0;
}

}  // namespace kiln::cli

#pragma once
// Terminal output for the CLI: JSON for scripts, tables and progress bars for people.
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

namespace kiln::cli {

using Json = nlohmann::json;

// Exit codes every command uses.
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitUsage = 2;

bool stdout_is_terminal();
void print_json(const Json& value);  // pretty, to stdout
void print_error(const std::string& message);  // "kiln: error: ..." to stderr

std::string format_duration(double seconds);  // "1:02:03", "4:05", "0:07", "?" when unknown
std::string format_bytes(double bytes);
// A one-line bar: "[#########---------]  47%  step 47/100  3.2 it/s  ETA 0:16  message"
std::string progress_line(const Json& progress, int width = 30);

// Redraws one status line in place on a terminal; prints whole lines otherwise (throttled).
class ProgressPrinter {
 public:
  void update(const std::string& line, bool force = false);
  void finish(const std::string& final_line);
  // A line of its own above the bar (e.g. "sample: /path.png"); the bar is redrawn at the next update.
  void note(const std::string& line) { finish(line); }

 private:
  bool tty_ = stdout_is_terminal();
  std::size_t last_width_ = 0;
  double last_print_ = -1;
};

}  // namespace kiln::cli

#include "service/logging.h"

#include <memory>
#include <vector>

#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/systemd_sink.h>
#include <spdlog/spdlog.h>

#include "service/server/systemd.h"

namespace kiln::service {

void setup_logging(const std::filesystem::path& log_dir, const std::string& level, bool to_stderr) {
  const auto parsed = spdlog::level::from_str(level);
  if (parsed == spdlog::level::off && level != "off")
    throw std::runtime_error("unknown log level '" + level + "': use trace, debug, info, warn, error or off");
  std::filesystem::create_directories(log_dir);
  std::vector<spdlog::sink_ptr> sinks;
  sinks.push_back(std::make_shared<spdlog::sinks::rotating_file_sink_mt>((log_dir / "kilnd.log").string(), 5u << 20, 3));
  // Under systemd, stderr is the journal: log there natively, with each message's priority.
  if (to_stderr && systemd::stderr_is_journal())
    sinks.push_back(std::make_shared<spdlog::sinks::systemd_sink_mt>("kilnd"));
  else if (to_stderr)
    sinks.push_back(std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  auto logger = std::make_shared<spdlog::logger>("kilnd", sinks.begin(), sinks.end());
  logger->set_level(parsed);
  logger->set_pattern("%Y-%m-%d %H:%M:%S.%e [%^%l%$] %v");
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

}  // namespace kiln::service

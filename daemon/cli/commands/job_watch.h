#pragma once
// Following a job until it ends: a progress bar for people, JSON lines for scripts.
#include <functional>
#include <string>

#include "client/client.h"

namespace kiln::cli {

// Called with each record the job reports; what it returns (if not empty) is printed on a line of
// its own above the progress bar.
using JobEventNote = std::function<std::string(const Json& job)>;

// Subscribes to the job and shows its progress until it is done, failed or cancelled.
// Returns the exit code: 0 when done, 1 otherwise (or when the daemon goes away). `final_record`,
// when given, receives the job's last record.
int watch_job(Client& client, const std::string& job_id, bool json_lines, Json* final_record = nullptr,
              const JobEventNote& note = nullptr);

}  // namespace kiln::cli

#pragma once
// Following a job until it ends: a progress bar for people, JSON lines for scripts.
#include <string>

#include "client/client.h"

namespace kiln::cli {

// Subscribes to the job and shows its progress until it is done, failed or cancelled.
// Returns the exit code: 0 when done, 1 otherwise (or when the daemon goes away). `final_record`,
// when given, receives the job's last record.
int watch_job(Client& client, const std::string& job_id, bool json_lines, Json* final_record = nullptr);

}  // namespace kiln::cli

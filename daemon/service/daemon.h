#pragma once
// kilnd wired together: instance locks, logging, the job scheduler, the socket server, the
// periodic shared-memory sweep, and graceful shutdown on SIGTERM/SIGINT or the `shutdown` method.
#include <filesystem>
#include <memory>
#include <string>

namespace kiln::service {

struct DaemonOptions {
  std::string socket_path;  // empty: $KILN_SOCKET or the per-user default
  std::string data_dir;     // empty: $KILN_DATA_DIR or ~/.local/share/kiln
  std::string device = "auto";
  std::string precision = "auto";   // fp32 on the CPU; fp16 (or bf16) on CUDA
  double model_memory_gb = 0;       // budget for loaded models; 0 = half the machine's memory
  std::string log_level = "info";
  bool log_to_stderr = true;
  int io_threads = 3;
  int stall_timeout_ms = 10000;  // a client must finish a started frame within this
  int sweep_interval_s = 30;     // how often orphaned shared-memory blocks are looked for
  // Remote clients (off unless listen is given): TLS on HOST:PORT with a token per client.
  std::string listen;
  std::string tls_cert, tls_key;      // empty: kilnd's own certificate in <data dir>/tls
  int remote_timeout_ms = 10000;      // TLS handshake, then hello with a token
  int auth_delay_ms = 500;            // a failed token's first wait (doubling, up to a minute)
  int max_upload_mb = 4096;           // all attachments of one remote request
};

class Daemon {
 public:
  explicit Daemon(DaemonOptions options);
  ~Daemon();
  // Serves until a shutdown; returns the process exit code. Throws std::runtime_error when it
  // cannot start (another instance, unusable paths), with a plain-language message.
  int run();
  void request_shutdown();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::service

// kilnd: the Kiln daemon. One per user; every plugin and the CLI talk to it over a local socket.
#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include <CLI/CLI.hpp>

#include "protocol/version.h"
#include "service/daemon.h"

namespace {
// kilnd shares the CPU with the user's applications (and, on CPU-only machines, with itself:
// interactive and training work). LibTorch's OpenMP threads spin while they wait by default,
// which makes every thread crawl when another program holds a core (tiny-model training steps
// measured 4× slower). The OpenMP runtime reads OMP_WAIT_POLICY when it loads, before main(), so
// when the user has not chosen, kilnd restarts itself once with the passive policy.
void prefer_passive_openmp_threads(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY")) return;
  ::setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  ::execv("/proc/self/exe", argv);  // returns only on failure: then run on with the default
}
}  // namespace

int main(int argc, char** argv) {
  prefer_passive_openmp_threads(argv);
  kiln::service::DaemonOptions options;
  CLI::App app{"kilnd — the Kiln daemon: owns the GPU, the models, the LoRA library and the job queue"};
  app.add_option("--socket", options.socket_path,
                 "socket path (default: $KILN_SOCKET, else $XDG_RUNTIME_DIR/kiln/kilnd.sock, else ~/.cache/kiln/kilnd.sock)");
  app.add_option("--data-dir", options.data_dir, "data directory (default: $KILN_DATA_DIR, else ~/.local/share/kiln)");
  app.add_option("--device", options.device, "compute device: auto (cuda > mps > cpu), cpu, cuda, cuda:N, mps")
      ->capture_default_str();
  app.add_option("--precision", options.precision, "auto (fp32 on CPU, fp16 on CUDA), fp32, fp16 or bf16")
      ->capture_default_str();
  app.add_option("--model-memory", options.model_memory_gb, "GB of memory for loaded models (default: half of RAM)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--log-level", options.log_level, "trace, debug, info, warn, error or off")->capture_default_str();
  app.add_option("--io-threads", options.io_threads, "threads serving the socket")->check(CLI::Range(1, 64))->capture_default_str();
  app.add_option("--stall-timeout-ms", options.stall_timeout_ms, "close a client that stops sending in the middle of a frame")
      ->check(CLI::Range(10, 3600000))
      ->capture_default_str();
  app.add_option("--sweep-interval", options.sweep_interval_s, "seconds between sweeps for orphaned image blocks")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  app.add_option("--listen", options.listen,
                 "also serve remote clients over TLS on HOST:PORT (e.g. 0.0.0.0:7433); off by default. Clients need a "
                 "token from `kiln remote token create`");
  app.add_option("--tls-cert", options.tls_cert, "PEM certificate for --listen (default: one kilnd makes in <data dir>/tls)");
  app.add_option("--tls-key", options.tls_key, "PEM private key of --tls-cert (must be private: chmod 600)");
  app.add_option("--remote-timeout-ms", options.remote_timeout_ms,
                 "a remote client must finish its TLS handshake, then say hello with its token, within this")
      ->check(CLI::Range(50, 600000))
      ->capture_default_str();
  app.add_option("--auth-delay-ms", options.auth_delay_ms,
                 "after a wrong token an address waits this long before its next try, doubling per failure (up to 60 s)")
      ->check(CLI::Range(10, 60000))
      ->capture_default_str();
  app.add_option("--max-upload-mb", options.max_upload_mb, "the most a remote request may carry (images, an uploaded file)")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  app.add_flag("--quiet", [&](int64_t) { options.log_to_stderr = false; }, "log only to the log file");
  app.set_version_flag("--version", std::string("kilnd ") + kiln::protocol::kKilnVersion);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  try {
    kiln::service::Daemon daemon(options);
    return daemon.run();
  } catch (const std::exception& e) {
    std::cerr << "kilnd: " << e.what() << "\n";
    return 1;
  }
}

#include "service/daemon.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

#include "engine/device.h"
#include "ipc/paths.h"
#include "ipc/shm_sweep.h"
#include "protocol/version.h"
#include "service/images/image_leases.h"
#include "service/instance_lock.h"
#include "service/jobs/job_store.h"
#include "service/jobs/scheduler.h"
#include "service/jobs/bench_job.h"
#include "service/jobs/compute.h"
#include "service/jobs/dataset_jobs.h"
#include "service/jobs/generate_job.h"
#include "service/jobs/shot_job.h"
#include "service/jobs/grid_job.h"
#include "service/jobs/train_job.h"
#include "service/jobs/simulate_job.h"
#include "service/library/lora_library.h"
#include "service/library/model_registry.h"
#include "service/logging.h"
#include "service/remote/certificate.h"
#include "service/remote/remote_access.h"
#include "service/server/dispatcher.h"
#include "service/server/systemd.h"
#include "ipc/framed_connection.h"
#include "service/server/server.h"
#include "service/server/tls_listener.h"
#include "studio/dataset/dataset_store.h"
#include "ipc/attachments.h"

namespace kiln::service {
namespace fs = std::filesystem;
namespace asio = boost::asio;

namespace {
constexpr auto kJobStopGrace = std::chrono::seconds(20);

// Loaded models may use this much memory: as asked, else half of the machine's RAM.
int64_t model_budget_bytes(double gigabytes) {
  if (gigabytes > 0) return static_cast<int64_t>(gigabytes * double(1ull << 30));
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? int64_t(pages) * page / 2 : int64_t(8) << 30;
}
}  // namespace

struct Daemon::Impl {
  DaemonOptions options;
  asio::io_context io;
  asio::signal_set signals{io, SIGINT, SIGTERM};
  asio::steady_timer sweep_timer{io};
  std::unique_ptr<InstanceLock> data_lock, socket_lock;
  ImageLeases leases;
  std::unique_ptr<JobStore> store;
  std::unique_ptr<ModelRegistry> models;
  std::unique_ptr<LoraLibrary> loras;
  std::unique_ptr<studio::DatasetStore> datasets;
  std::unique_ptr<Compute> compute;
  std::unique_ptr<Scheduler> scheduler;
  DaemonInfo info;
  std::unique_ptr<Services> services;
  Dispatcher dispatcher;
  std::unique_ptr<Server> server;
  std::unique_ptr<RemoteAccess> remote;
  std::unique_ptr<TlsListener> listener;
  std::atomic<bool> stopping{false};
  std::thread shutdown_thread;

  void sweep() {
    const auto orphans = ipc::sweep_orphan_shm_blocks();
    const std::size_t expired = leases.expire();
    if (!orphans.empty() || expired)
      spdlog::info("removed {} orphaned and {} expired shared-memory image blocks", orphans.size(), expired);
    if (remote)
      if (const std::size_t old = remote->sweep_uploads(); old > 0) spdlog::info("removed {} uploads older than a day", old);
    sweep_timer.expires_after(std::chrono::seconds(options.sweep_interval_s));
    sweep_timer.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) sweep();
    });
  }

  void shutdown() {
    if (stopping.exchange(true)) return;
    // On its own thread: stopping the job may take a while, and the io threads keep serving
    // (refusing new work) meanwhile.
    shutdown_thread = std::thread([this] {
      spdlog::info("shutting down");
      systemd::notify_stopping();
      server->stop_accepting();
      if (listener) listener->stop();
      if (!scheduler->stop(kJobStopGrace))
        spdlog::warn("the running job did not reach a safe point within {} s; its record says so",
                     std::chrono::duration_cast<std::chrono::seconds>(kJobStopGrace).count());
      server->stop();
      leases.remove_all();
      // Let the last replies and notifications go out.
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      io.stop();
    });
  }
};

Daemon::Daemon(DaemonOptions options) : impl_(std::make_unique<Impl>()) { impl_->options = std::move(options); }

Daemon::~Daemon() {
  if (impl_->shutdown_thread.joinable()) impl_->shutdown_thread.join();
}

void Daemon::request_shutdown() {
  asio::post(impl_->io, [impl = impl_.get()] { impl->shutdown(); });
}

int Daemon::run() {
  Impl& d = *impl_;
  const fs::path socket_path = ipc::resolve_socket_path(d.options.socket_path);
  const fs::path data_dir = ipc::resolve_data_dir(d.options.data_dir);
  if (std::string problem = ipc::check_socket_path(socket_path); !problem.empty()) throw std::runtime_error(problem);

  ensure_private_directory(data_dir);
  ensure_private_directory(socket_path.parent_path());
  d.data_lock = std::make_unique<InstanceLock>(data_dir / "kilnd.lock");
  d.socket_lock = std::make_unique<InstanceLock>(fs::path(socket_path.string() + ".lock"));
  setup_logging(data_dir / "logs", d.options.log_level, d.options.log_to_stderr);
  ::signal(SIGPIPE, SIG_IGN);

  const engine::DeviceChoice device = engine::choose_device(d.options.device, d.options.precision);
  d.info.version = protocol::kKilnVersion;
  d.info.device = engine::describe_device(device);
  d.info.socket_path = socket_path;
  d.info.data_dir = data_dir;

  d.sweep();  // blocks left by a crashed daemon or killed clients

  d.store = std::make_unique<JobStore>(data_dir / "jobs");
  d.scheduler = std::make_unique<Scheduler>(*d.store, d.leases);
  d.models = std::make_unique<ModelRegistry>(data_dir / "models.json");
  d.loras = std::make_unique<LoraLibrary>(data_dir / "loras");
  d.datasets = std::make_unique<studio::DatasetStore>(data_dir);  // <data dir>/datasets
  d.compute = std::make_unique<Compute>(device, model_budget_bytes(d.options.model_memory_gb));
  d.scheduler->register_type(make_simulate_job_type());
  d.scheduler->register_type(make_generate_job_type(*d.compute, *d.models, *d.loras, d.leases, data_dir / "outputs"));
  d.scheduler->register_type(make_shot_job_type(*d.compute, *d.models, *d.loras, d.leases, data_dir / "outputs"));
  d.scheduler->register_type(make_bench_generate_job_type(*d.compute, *d.models));
  d.scheduler->register_type(make_dataset_add_images_job_type(*d.datasets));
  d.scheduler->register_type(make_dataset_prepare_job_type(*d.datasets));
  d.scheduler->register_type(make_dataset_auto_tag_job_type(*d.datasets, data_dir / "taggers"));
  d.scheduler->register_type(make_train_job_type(
      {*d.compute, *d.models, *d.loras, [store = d.datasets.get()](const std::string& name) { return store->folder(name); }}));
  d.scheduler->register_type(make_grid_job_type(*d.compute, *d.models, *d.loras));
  d.services = std::make_unique<Services>(
      Services{*d.scheduler, d.leases, d.info, *d.models, *d.loras, *d.datasets, nullptr, [this] { request_shutdown(); }});

  register_core_handlers(d.dispatcher);
  register_job_handlers(d.dispatcher);
  register_image_handlers(d.dispatcher);
  register_model_handlers(d.dispatcher);
  register_generate_handlers(d.dispatcher);
  register_lora_handlers(d.dispatcher);
  register_dataset_handlers(d.dispatcher);
  register_train_handlers(d.dispatcher);
  register_remote_handlers(d.dispatcher);
  if (auto problems = d.dispatcher.mismatches(); !problems.empty())
    throw std::logic_error("protocol and handlers disagree: " + problems.front());

  ipc::ConnectionLimits limits;
  limits.stall_timeout = std::chrono::milliseconds(d.options.stall_timeout_ms);
  d.server = std::make_unique<Server>(d.io, socket_path, d.dispatcher, *d.services, limits);
  const auto activated = systemd::activated_socket(socket_path);  // kilnd.socket
  if (activated) d.server->use_activated_socket(*activated);
  d.services->server = d.server.get();
  RemoteSettings remote_settings;
  remote_settings.listen = d.options.listen;
  remote_settings.tls_cert = d.options.tls_cert;
  remote_settings.tls_key = d.options.tls_key;
  remote_settings.handshake_timeout = std::chrono::milliseconds(d.options.remote_timeout_ms);
  remote_settings.auth_delay = std::chrono::milliseconds(d.options.auth_delay_ms);
  remote_settings.max_upload_bytes = uint64_t(d.options.max_upload_mb) << 20;
  d.remote = std::make_unique<RemoteAccess>(data_dir, remote_settings);
  d.services->remote = d.remote.get();
  d.scheduler->set_observer([&d](const JobRecord& record, Scheduler::Event event, const std::optional<protocol::ImageRef>& preview) {
    d.server->publish_job(record, event == Scheduler::Event::State, preview);
  });
  d.scheduler->recover();
  // The TLS port first: once the local socket answers, kilnd serves both.
  if (!d.options.listen.empty()) {
    const TlsIdentity identity = load_or_create_tls_identity(data_dir / "tls", d.options.tls_cert, d.options.tls_key);
    ipc::ConnectionLimits remote_limits = limits;
    remote_limits.max_binary_frame_bytes = ipc::kMaxBinaryFrameBytes;
    d.listener = std::make_unique<TlsListener>(d.io, *d.server, *d.remote, remote_limits);
    d.listener->start(d.options.listen, identity);
    d.remote->set_listening(d.listener->bound_address(), identity.fingerprint);
    spdlog::info("listening for remote clients on {} (TLS; {}certificate {} {})", d.listener->bound_address(),
                 identity.created ? "new " : "", identity.fingerprint, identity.cert.string());
    if (d.remote->tokens().list().empty())
      spdlog::warn("no remote tokens exist yet: make one with `kiln remote token create --name laptop-1` on this machine");
  }
  d.server->start();
  d.scheduler->start();
  d.signals.async_wait([this](const boost::system::error_code& ec, int signal) {
    if (!ec) {
      spdlog::info("received signal {}", signal);
      impl_->shutdown();
    }
  });
  spdlog::info("kilnd {} ready on {}{} (data {}, device {})", d.info.version, socket_path.string(),
               activated ? " (socket from systemd)" : "", data_dir.string(), d.info.device);
  systemd::notify_ready();

  std::vector<std::thread> threads;
  for (int i = 1; i < std::max(1, d.options.io_threads); ++i) threads.emplace_back([&d] { d.io.run(); });
  d.io.run();
  for (auto& t : threads) t.join();
  if (d.shutdown_thread.joinable()) d.shutdown_thread.join();
  spdlog::info("kilnd stopped");
  spdlog::default_logger()->flush();
  return 0;
}

}  // namespace kiln::service

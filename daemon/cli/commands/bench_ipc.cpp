// kiln bench ipc [--remote NAME] [--json]: request latency and image round trips against a live
// daemon. Locally it measures shared memory, the current path beside the old one (fresh mappings
// per request) in the same run; with --remote, the same over TLS, with and without compression.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <iostream>
#include <numeric>
#include <vector>

#include "cli/commands/commands.h"
#include "cli/output.h"
#include "ipc/attachments.h"
#include "protocol/methods.h"
#include "protocol/version.h"

namespace kiln::cli {

namespace {
using Clock = std::chrono::steady_clock;

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const std::size_t i = std::min(v.size() - 1, static_cast<std::size_t>(p / 100.0 * double(v.size() - 1) + 0.5));
  return v[i];
}

enum class EchoMode {
  Copies,  // pixels copied in from and out to the caller's own buffers: what a plugin does
  InPlace, // pixels produced and consumed in shared memory: the IPC cost alone
  Cold,    // fresh blocks both ways, the daemon creating the result: a first request
};

// One image.echo round trip of a side x side RGBA8 image; returns milliseconds. `old_path`: the
// daemon maps the blocks afresh for this request (as before session mappings).
double echo_once(Client& client, uint32_t side, EchoMode mode, const std::vector<uint8_t>& source,
                 std::vector<uint8_t>& sink, bool old_path = false) {
  protocol::ImageDesc desc;
  desc.width = desc.height = side;
  desc.channels = 4;
  const auto start = Clock::now();
  if (mode == EchoMode::Cold) {
    ipc::ShmImage image = ipc::ShmImage::create(desc);
    std::memcpy(image.data(), source.data(), source.size());
    const Json answer = client.call(protocol::method::kImageEcho, {{"image", protocol::to_json(image.ref())}});
    const ipc::ShmImage back = client.take_image(answer.at("image"));
    std::memcpy(sink.data(), back.data(), sink.size());
    return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  }
  ipc::ShmImage image = client.create_image(desc);
  ipc::ShmImage result = client.create_image(desc);
  if (mode == EchoMode::Copies) std::memcpy(image.data(), source.data(), source.size());
  Json params{{"image", protocol::to_json(image.ref())}, {"into", protocol::to_json(result.ref())}};
  if (old_path) params["fresh_mappings"] = true;
  client.call(protocol::method::kImageEcho, params);
  if (mode == EchoMode::Copies) std::memcpy(sink.data(), result.data(), sink.size());
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  if (mode == EchoMode::InPlace) std::memcpy(sink.data(), result.data(), sink.size());  // for the check only
  return ms;
}

// Median of `n` round trips after one checked warm-up.
double echo_p50(Client& client, uint32_t side, EchoMode mode, const std::vector<uint8_t>& source, int n, bool old_path = false,
                double* p99 = nullptr) {
  std::vector<uint8_t> sink(source.size(), 0);
  echo_once(client, side, mode, source, sink, old_path);  // warm-up, and a correctness check
  if (std::memcmp(source.data(), sink.data(), source.size()) != 0)
    throw std::runtime_error("image.echo returned different pixels at " + std::to_string(side) + "x" + std::to_string(side));
  std::vector<double> ms;
  for (int i = 0; i < n; ++i) ms.push_back(echo_once(client, side, mode, source, sink, old_path));
  if (p99) *p99 = percentile(ms, 99);
  return percentile(ms, 50);
}

// The local benchmark's pattern: every byte different from its neighbours.
std::vector<uint8_t> hashed_pixels(uint32_t side) {
  std::vector<uint8_t> v(std::size_t(side) * side * 4);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<uint8_t>(i * 2654435761u >> 24);
  return v;
}

// Something like a photograph for compression: smooth light and colour with a little sensor noise.
std::vector<uint8_t> photo_like_pixels(uint32_t side) {
  std::vector<uint8_t> v(std::size_t(side) * side * 4);
  uint32_t state = 2463534242u;
  for (uint32_t y = 0; y < side; ++y)
    for (uint32_t x = 0; x < side; ++x) {
      uint8_t* p = &v[(std::size_t(y) * side + x) * 4];
      for (int c = 0; c < 3; ++c) {
        state ^= state << 13, state ^= state >> 17, state ^= state << 5;
        const double base = 128 + 60 * std::sin(x / (97.0 + 13 * c)) + 40 * std::cos(y / (53.0 + 7 * c)) + 20 * std::sin((x + y) / 301.0);
        p[c] = static_cast<uint8_t>(std::clamp(base + int(state % 7) - 3, 0.0, 255.0));
      }
      p[3] = 255;
    }
  return v;
}

// A layer with a cut-out, as Krita and Photoshop send them: the photo-like pixels inside a disc
// of half the side's diameter, fully transparent (all zero) around it.
std::vector<uint8_t> cutout_pixels(uint32_t side) {
  std::vector<uint8_t> v = photo_like_pixels(side);
  const double r = side / 4.0, c = side / 2.0;
  for (uint32_t y = 0; y < side; ++y)
    for (uint32_t x = 0; x < side; ++x)
      if ((x - c) * (x - c) + (y - c) * (y - c) > r * r) std::memset(&v[(std::size_t(y) * side + x) * 4], 0, 4);
  return v;
}

double zstd_fraction(const std::vector<uint8_t>& pixels) {
  ipc::Attachment a;
  a.kind = ipc::Attachment::Kind::File;
  a.name = "bench";
  a.bytes = pixels.size();
  a.data = pixels.data();
  const auto encoded = ipc::encode_attachments({a}, ipc::Compression::Zstd);
  return double(encoded.wire_bytes) / double(encoded.raw_bytes);
}

Json latency(Client& client, int iterations) {
  const Json params{{"client", "kiln-bench"}, {"protocol", protocol::kProtocolVersion}};
  for (int i = 0; i < std::min(100, iterations); ++i) client.call(protocol::method::kHello, params);  // warm-up
  std::vector<double> hello_us;
  hello_us.reserve(iterations);
  for (int i = 0; i < iterations; ++i) {
    const auto t0 = Clock::now();
    client.call(protocol::method::kHello, params);
    hello_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  std::vector<double> status_us;
  for (int i = 0; i < std::max(1, iterations / 4); ++i) {
    const auto t0 = Clock::now();
    client.call(protocol::method::kStatus);
    status_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  return {{"hello_p50_us", percentile(hello_us, 50)},
          {"hello_p99_us", percentile(hello_us, 99)},
          {"status_p50_us", percentile(status_us, 50)},
          {"requests", iterations}};
}

Json run_local(Client& client, int iterations, int image_iterations) {
  Json result = latency(client, iterations);
  for (uint32_t side : {512u, 1024u, 4096u}) {
    const std::vector<uint8_t> source = hashed_pixels(side);
    for (EchoMode mode : {EchoMode::Copies, EchoMode::InPlace, EchoMode::Cold}) {
      const std::string key = "echo_" + std::to_string(side) + "_rgba" +
                              (mode == EchoMode::Copies ? "" : mode == EchoMode::InPlace ? "_in_place" : "_cold") + "_ms";
      double p99 = 0;
      result[key] = echo_p50(client, side, mode, source, image_iterations, false, &p99);
      if (mode == EchoMode::Copies) result[key + "_p99"] = p99;
    }
  }
  // The old path, in the same run: the daemon maps the client's blocks afresh per request.
  const std::vector<uint8_t> source = hashed_pixels(4096);
  result["echo_4096_rgba_old_path_ms"] = echo_p50(client, 4096, EchoMode::Copies, source, image_iterations, true);
  result["echo_4096_rgba_in_place_old_path_ms"] = echo_p50(client, 4096, EchoMode::InPlace, source, image_iterations, true);
  result["image_iterations"] = image_iterations;
  return result;
}

Json run_remote(const GlobalOptions& global, const std::string& remote, int iterations, int image_iterations) {
  Json result = Json::object();
  for (const char* compression : {"none", "zstd"}) {
    ClientOptions options;
    options.remote = remote;
    options.compression = compression;
    options.client_name = std::string("kiln-bench ") + protocol::kKilnVersion;
    options.autostart = false;
    Client client(options);
    client.connect();
    result["daemon"] = client.socket_path();
    if (std::string(compression) == "none") result.update(latency(client, iterations));
    for (uint32_t side : {512u, 1024u, 4096u}) {
      const std::vector<uint8_t> source = photo_like_pixels(side);
      const std::string key = "remote_echo_" + std::to_string(side) + "_rgba_" + compression + "_ms";
      result[key] = echo_p50(client, side, EchoMode::Copies, source, image_iterations);
    }
    result["remote_echo_4096_rgba_" + std::string(compression) + "_cold_ms"] =
        echo_p50(client, 4096, EchoMode::Cold, photo_like_pixels(4096), std::max(1, image_iterations / 2));
    result["remote_echo_4096_rgba_cutout_" + std::string(compression) + "_ms"] =
        echo_p50(client, 4096, EchoMode::Copies, cutout_pixels(4096), image_iterations);
  }
  // How much zstd saves on the benchmark's images (one direction).
  result["zstd_wire_fraction"] = zstd_fraction(photo_like_pixels(4096));
  result["zstd_wire_fraction_cutout"] = zstd_fraction(cutout_pixels(4096));
  result["image_iterations"] = image_iterations;
  (void)global;
  return result;
}
}  // namespace

void add_bench_ipc_command(CLI::App& bench, const GlobalOptions& global, CommandResult& result) {
  auto* ipc = bench.add_subcommand("ipc", "request latency and image round trips against kilnd (local, or --remote)");
  auto json = std::make_shared<bool>(false);
  auto iterations = std::make_shared<int>(5000);
  auto image_iterations = std::make_shared<int>(20);
  auto remote = std::make_shared<std::string>();
  ipc->add_flag("--json", *json, "print the numbers as one JSON object");
  ipc->add_option("--requests", *iterations, "number of timed hello calls")->check(CLI::Range(10, 1000000))->capture_default_str();
  ipc->add_option("--images", *image_iterations, "timed round trips per image size")->check(CLI::Range(1, 1000))->capture_default_str();
  ipc->add_option("--remote", *remote, "measure a remote daemon over TLS: a saved remote's NAME or kiln+tls://HOST:PORT");
  ipc->callback([&global, &result, json, iterations, image_iterations, remote] {
    const std::string target = !remote->empty() ? *remote : global.remote;
    if (!target.empty()) {
      const Json r = run_remote(global, target, *iterations, *image_iterations);
      if (*json) {
        print_json(r);
      } else {
        char buf[2048];
        std::snprintf(buf, sizeof buf,
                      "remote daemon %s (TLS)\n"
                      "hello        p50 %7.1f us   p99 %7.1f us   (%d calls)\n"
                      "status       p50 %7.1f us\n"
                      "echo 512²    p50 %7.2f ms   zstd %7.2f ms   (RGBA8, photo-like pixels, both ways)\n"
                      "echo 1024²   p50 %7.2f ms   zstd %7.2f ms\n"
                      "echo 4096²   p50 %7.2f ms   zstd %7.2f ms   (zstd sends %.0f%% of the bytes)\n"
                      "  cold       p50 %7.2f ms   zstd %7.2f ms   (the daemon makes the result; a fresh copy here)\n"
                      "  cut-out    p50 %7.2f ms   zstd %7.2f ms   (a layer 80%% transparent; zstd sends %.0f%%)\n",
                      r["daemon"].get<std::string>().c_str(), r["hello_p50_us"].get<double>(), r["hello_p99_us"].get<double>(),
                      *iterations, r["status_p50_us"].get<double>(), r["remote_echo_512_rgba_none_ms"].get<double>(),
                      r["remote_echo_512_rgba_zstd_ms"].get<double>(), r["remote_echo_1024_rgba_none_ms"].get<double>(),
                      r["remote_echo_1024_rgba_zstd_ms"].get<double>(), r["remote_echo_4096_rgba_none_ms"].get<double>(),
                      r["remote_echo_4096_rgba_zstd_ms"].get<double>(), 100 * r["zstd_wire_fraction"].get<double>(),
                      r["remote_echo_4096_rgba_none_cold_ms"].get<double>(), r["remote_echo_4096_rgba_zstd_cold_ms"].get<double>(),
                      r["remote_echo_4096_rgba_cutout_none_ms"].get<double>(), r["remote_echo_4096_rgba_cutout_zstd_ms"].get<double>(),
                      100 * r["zstd_wire_fraction_cutout"].get<double>());
        std::cout << buf;
      }
      result.exit_code = kExitOk;
      return;
    }
    auto client = connect(global);
    const Json r = run_local(*client, *iterations, *image_iterations);
    if (*json) {
      print_json(r);
    } else {
      char buf[2048];
      std::snprintf(buf, sizeof buf,
                    "hello        p50 %7.1f us   p99 %7.1f us   (%d calls)\n"
                    "status       p50 %7.1f us\n"
                    "echo 512²    p50 %7.2f ms\n"
                    "echo 1024²   p50 %7.2f ms\n"
                    "echo 4096²   p50 %7.2f ms   p99 %7.2f ms   (RGBA8, copied in and out of the caller's buffers)\n"
                    "  old path   p50 %7.2f ms   (the daemon mapping the blocks afresh per request, measured now)\n"
                    "  in place   p50 %7.2f ms   (pixels already in shared memory: the IPC cost alone)\n"
                    "  old path   p50 %7.2f ms   (in place, fresh mappings)\n"
                    "  cold       p50 %7.2f ms   (fresh blocks both ways, as a first request pays)\n",
                    r["hello_p50_us"].get<double>(), r["hello_p99_us"].get<double>(), *iterations,
                    r["status_p50_us"].get<double>(), r["echo_512_rgba_ms"].get<double>(),
                    r["echo_1024_rgba_ms"].get<double>(), r["echo_4096_rgba_ms"].get<double>(),
                    r["echo_4096_rgba_ms_p99"].get<double>(), r["echo_4096_rgba_old_path_ms"].get<double>(),
                    r["echo_4096_rgba_in_place_ms"].get<double>(), r["echo_4096_rgba_in_place_old_path_ms"].get<double>(),
                    r["echo_4096_rgba_cold_ms"].get<double>());
      std::cout << buf;
    }
    result.exit_code = kExitOk;
  });
}

}  // namespace kiln::cli

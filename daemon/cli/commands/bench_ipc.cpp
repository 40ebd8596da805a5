// kiln bench ipc [--json]: request latency and shared-memory image round trips against a live daemon.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <iostream>
#include <numeric>
#include <vector>

#include "cli/commands/commands.h"
#include "cli/output.h"
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

// One image.echo round trip of a side x side RGBA8 image; returns milliseconds.
double echo_once(Client& client, uint32_t side, EchoMode mode, const std::vector<uint8_t>& source,
                 std::vector<uint8_t>& sink) {
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
  client.call(protocol::method::kImageEcho,
              {{"image", protocol::to_json(image.ref())}, {"into", protocol::to_json(result.ref())}});
  if (mode == EchoMode::Copies) std::memcpy(sink.data(), result.data(), sink.size());
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  if (mode == EchoMode::InPlace) std::memcpy(sink.data(), result.data(), sink.size());  // for the check only
  return ms;
}

Json run_benchmark(Client& client, int iterations, int image_iterations) {
  const Json params{{"client", "kiln-bench"}, {"protocol", protocol::kProtocolVersion}};
  for (int i = 0; i < 100; ++i) client.call(protocol::method::kHello, params);  // warm-up
  std::vector<double> hello_us;
  hello_us.reserve(iterations);
  for (int i = 0; i < iterations; ++i) {
    const auto t0 = Clock::now();
    client.call(protocol::method::kHello, params);
    hello_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  std::vector<double> status_us;
  for (int i = 0; i < iterations / 4; ++i) {
    const auto t0 = Clock::now();
    client.call(protocol::method::kStatus);
    status_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }

  Json result{{"hello_p50_us", percentile(hello_us, 50)},
              {"hello_p99_us", percentile(hello_us, 99)},
              {"status_p50_us", percentile(status_us, 50)},
              {"requests", iterations}};
  for (uint32_t side : {512u, 1024u, 4096u}) {
    const std::size_t bytes = std::size_t(side) * side * 4;
    std::vector<uint8_t> source(bytes), sink(bytes);
    for (std::size_t i = 0; i < bytes; ++i) source[i] = static_cast<uint8_t>(i * 2654435761u >> 24);
    for (EchoMode mode : {EchoMode::Copies, EchoMode::InPlace, EchoMode::Cold}) {
      std::fill(sink.begin(), sink.end(), 0);
      echo_once(client, side, mode, source, sink);  // warm-up, and a correctness check
      if (std::memcmp(source.data(), sink.data(), bytes) != 0)
        throw std::runtime_error("image.echo returned different pixels at " + std::to_string(side) + "x" + std::to_string(side));
      std::vector<double> ms;
      for (int i = 0; i < image_iterations; ++i) ms.push_back(echo_once(client, side, mode, source, sink));
      const std::string key = "echo_" + std::to_string(side) + "_rgba" +
                              (mode == EchoMode::Copies ? "" : mode == EchoMode::InPlace ? "_in_place" : "_cold") + "_ms";
      result[key] = percentile(ms, 50);
      if (mode == EchoMode::Copies) result[key + "_p99"] = percentile(ms, 99);
    }
  }
  result["image_iterations"] = image_iterations;
  return result;
}
}  // namespace

void add_bench_ipc_command(CLI::App& bench, const GlobalOptions& global, CommandResult& result) {
  auto* ipc = bench.add_subcommand("ipc", "request latency and shared-memory image round trips against kilnd");
  auto json = std::make_shared<bool>(false);
  auto iterations = std::make_shared<int>(5000);
  auto image_iterations = std::make_shared<int>(20);
  ipc->add_flag("--json", *json, "print the numbers as one JSON object");
  ipc->add_option("--requests", *iterations, "number of timed hello calls")->check(CLI::Range(10, 1000000))->capture_default_str();
  ipc->add_option("--images", *image_iterations, "timed round trips per image size")->check(CLI::Range(1, 1000))->capture_default_str();
  ipc->callback([&global, &result, json, iterations, image_iterations] {
    auto client = connect(global);
    const Json r = run_benchmark(*client, *iterations, *image_iterations);
    if (*json) {
      print_json(r);
    } else {
      char buf[1024];
      std::snprintf(buf, sizeof buf,
                    "hello        p50 %7.1f us   p99 %7.1f us   (%d calls)\n"
                    "status       p50 %7.1f us\n"
                    "echo 512²    p50 %7.2f ms\n"
                    "echo 1024²   p50 %7.2f ms\n"
                    "echo 4096²   p50 %7.2f ms   p99 %7.2f ms   (RGBA8, copied in and out of the caller's buffers)\n"
                    "  in place   p50 %7.2f ms   (pixels already in shared memory: the IPC cost alone)\n"
                    "  cold       p50 %7.2f ms   (fresh blocks both ways, as a first request pays)\n",
                    r["hello_p50_us"].get<double>(), r["hello_p99_us"].get<double>(), *iterations,
                    r["status_p50_us"].get<double>(), r["echo_512_rgba_ms"].get<double>(),
                    r["echo_1024_rgba_ms"].get<double>(), r["echo_4096_rgba_ms"].get<double>(),
                    r["echo_4096_rgba_ms_p99"].get<double>(), r["echo_4096_rgba_in_place_ms"].get<double>(),
                    r["echo_4096_rgba_cold_ms"].get<double>());
      std::cout << buf;
    }
    result.exit_code = kExitOk;
  });
}

}  // namespace kiln::cli

// dmis-bench: timings of the training step and the diffusion-classifier forward, with the
// PyTorch reference of the same configuration measured in the same run (--compare-torch).
// Prints one JSON line per measurement. A benchmark, not a test.
#include <Kokkos_Core.hpp>
#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/error.hpp"
#include "core/version.hpp"
#include "data/supervision.hpp"
#include "diffusion/edm.hpp"
#include "dist/comm.hpp"
#include "dist/reduce.hpp"
#include "dmis_config.hpp"
#include "deck/deck.hpp"
#include "methods/edm_step.hpp"
#include "methods/method_step.hpp"
#include "train/trainer.hpp"
#include "kernels/conv2d.hpp"
#include "kernels/cross_entropy.hpp"
#include "kernels/mixed_gemm.hpp"
#include "models/evaluator.hpp"
#include "models/unet.hpp"
#include "optim/optimizer.hpp"

namespace {
using namespace dmis;
using Exec = Kokkos::DefaultExecutionSpace;

const char* kUsage =
    "usage: dmis-bench train-step  [--preset unet-s] [--batch 64] [--warmup 3] [--steps 10]\n"
    "                              [--compare-torch] [--python PATH] [--conv-scratch-mb MB]\n"
    "                              [--conv gemm|rows|winograd] [--precision fp32|bf16]\n"
    "                              [--peak-gflops G]\n"
    "       dmis-bench classifier  [--preset unet-s] [--batch 64] [--classes K] [...same]\n"
    "       dmis-bench evaluator   [--batch 128] [--warmup 3] [--steps 10] [--profile]\n"
    "       dmis-bench dmis-step   --deck FILE [--set KEY=VALUE]... [--warmup 3] [--steps 10]\n"
    "                              [--profile]\n"
    "       dmis-bench scaling     [--preset unet-s] [--batch 16] [--ranks 1,2,4]\n"
    "                              [--threads-per-rank 1] [--launcher mpirun] [...same]\n"
    "\n"
    "train-step times the full training step (forward, backward, gradient clipping, AdamW,\n"
    "EMA) after warm-up; classifier times the diffusion-classifier forward (B images x K\n"
    "classes at one sigma, one forward of B K; PyTorch in K forwards of B, its fastest here).\n"
    "--compare-torch runs bench/torch_ref.py (PyTorch, same batch and thread count) in the\n"
    "same run and adds torch_* fields and ratio = ours / torch.\n"
    "Threads: OMP_NUM_THREADS (both sides). --profile prints the time per kernel label and\n"
    "Kokkos Kernels GEMM region over the timed steps (host backends: kernels are synchronous).\n"
    "Under mpirun, train-step is data parallel: --batch images per rank, gradients summed over\n"
    "the ranks every step (img_per_s counts all ranks). scaling runs train-step under the\n"
    "launcher at each rank count (weak scaling: fixed per-rank batch) and prints the\n"
    "efficiency img_per_s(R) / (R img_per_s(1)). evaluator times one training step of the\n"
    "evaluator classifier (forward, cross-entropy, backward, AdamW; models/evaluator.hpp).\n"
    "dmis-step times the DMIS training step of a deck (its network, batch and method keys)\n"
    "against the vanilla step of the same network and batch, alternating one of each so that\n"
    "both see the same machine load; ratio = dmis / vanilla of the medians, pair_ratio_* those of\n"
    "the rounds' pairs (--profile: the DMIS steps).\n"
    "--conv: how 3x3 stride-1 convolutions are computed (rows, the default: the input unfolded\n"
    "over kernel rows, one GEMM per kernel column; gemm: im2col + GEMM; or Winograd F(2x2,3x3);\n"
    "DMIS_CONV_ALGO sets the same). --precision bf16: the convolutions' GEMMs in bf16 with fp32\n"
    "accumulation (train.precision; --compare-torch's PyTorch stays fp32). peak_share: the\n"
    "achieved GFLOP/s over the peak for the precision in use, --peak-gflops or estimated from\n"
    "/proc/cpuinfo (threads x clock x flops per cycle, named in peak_basis).\n"
    "Every result names the algorithm, the precision and the\n"
    "OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE the process saw.\n";

struct Options {
  std::string mode, preset = "unet-s", python = "/usr/bin/python3", launcher = "mpirun";
  std::vector<int> ranks = {1, 2, 4};
  int threads_per_rank = 1;
  bool batch_set = false;
  int batch = 64, warmup = 3, steps = 10, classes = -1;
  bool compare_torch = false, profile = false;
  double conv_scratch_mb = 0;
  double peak_gflops = 0;  // --peak-gflops: the machine's peak for the precision in use (0: estimated)
  std::string deck;
  std::vector<std::string> sets;
};

Options parse(int argc, char** argv) {
  Options o;
  if (argc < 2) throw UsageError("missing mode (train-step, classifier or scaling)");
  o.mode = argv[1];
  if (o.mode == "--help" || o.mode == "-h") {
    std::cout << kUsage;
    std::exit(0);
  }
  if (o.mode != "train-step" && o.mode != "classifier" && o.mode != "scaling" &&
      o.mode != "evaluator" && o.mode != "dmis-step")
    throw UsageError(cat("unknown mode '", o.mode,
                         "' (train-step, classifier, evaluator, dmis-step or scaling)"));
  auto value = [&](int& i) -> std::string {
    if (i + 1 >= argc) throw UsageError(cat(argv[i], " needs a value"));
    return argv[++i];
  };
  auto to_int = [](const std::string& opt, const std::string& v) {
    try {
      size_t used = 0;
      const int x = std::stoi(v, &used);
      if (used != v.size() || x <= 0) throw std::invalid_argument("");
      return x;
    } catch (const std::exception&) {
      throw UsageError(cat(opt, " expects a positive integer, found '", v, "'"));
    }
  };
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--preset") o.preset = value(i);
    else if (a == "--batch") o.batch = to_int(a, value(i)), o.batch_set = true;
    else if (a == "--threads-per-rank") o.threads_per_rank = to_int(a, value(i));
    else if (a == "--launcher") o.launcher = value(i);
    else if (a == "--ranks") {
      o.ranks.clear();
      std::stringstream ss(value(i));
      std::string item;
      while (std::getline(ss, item, ',')) o.ranks.push_back(to_int("--ranks", item));
      if (o.ranks.empty()) throw UsageError("--ranks expects a list such as 1,2,4");
    }
    else if (a == "--warmup") o.warmup = to_int(a, value(i));
    else if (a == "--steps") o.steps = to_int(a, value(i));
    else if (a == "--classes") o.classes = to_int(a, value(i));
    else if (a == "--python") o.python = value(i);
    else if (a == "--conv-scratch-mb") o.conv_scratch_mb = to_int(a, value(i));
    else if (a == "--compare-torch") o.compare_torch = true;
    else if (a == "--peak-gflops") {
      const std::string v = value(i);
      o.peak_gflops = std::atof(v.c_str());
      if (!(o.peak_gflops > 0)) throw UsageError(cat("--peak-gflops expects a positive number, found '", v, "'"));
    }
    else if (a == "--conv") {
      try {
        kernels::set_conv_algorithm(kernels::parse_conv_algorithm(value(i), "--conv"));
      } catch (const InputError& e) {
        throw UsageError(e.what());
      }
    }
    else if (a == "--precision") {
      const std::string v = value(i);
      try {
        kernels::set_gemm_precision(kernels::parse_gemm_precision(v, "--precision"), "--precision");
      } catch (const InputError& e) {
        throw UsageError(e.what());
      }
      // dmis-step builds its steps from the deck, whose train.precision sets the precision
      // again: the option goes there too (a later --set train.precision still wins)
      o.sets.insert(o.sets.begin(), "train.precision=" + v);
    }
    else if (a == "--deck") o.deck = value(i);
    else if (a == "--set") o.sets.push_back(value(i));
    else if (a == "--profile") o.profile = true;
    else if (a == "--help" || a == "-h") {
      std::cout << kUsage;
      std::exit(0);
    } else
      throw UsageError(cat("unknown option '", a, "'"));
  }
  return o;
}

// The settings that change the kernels a result measured: the convolution algorithm and the
// OpenBLAS overrides of the environment (this project never sets them; a machine may), and the
// kernel set OpenBLAS chose with them.
std::string kernel_fields() {
  auto env = [](const char* k) {
    const char* v = std::getenv(k);
    return v ? cat("\"", v, "\"") : std::string("null");
  };
  const std::string core = openblas_core();
  return cat(", \"conv\": \"", kernels::conv_algorithm_name(kernels::conv_algorithm()),
             "\", \"precision\": \"", kernels::gemm_precision_name(kernels::gemm_precision()),
             "\", \"bf16_layout\": \"", kernels::bf16_layout_name(kernels::bf16_layout()),
             "\", \"openblas_coretype\": ", env("OPENBLAS_CORETYPE"),
             ", \"openblas_l2_size\": ", env("OPENBLAS_L2_SIZE"), ", \"openblas_core\": ",
             core.empty() ? std::string("null") : cat("\"", core, "\""));
}

// Resident memory from /proc/self/status, in MiB ("VmRSS" now, "VmHWM" peak since reset).
double proc_mb(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(key, 0) == 0) return std::atof(line.c_str() + std::string(key).size() + 1) / 1024;
  return -1;
}
void reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
}

// --profile: time per kernel label (and per GEMM region) through Kokkos Tools callbacks.
struct KernelProfile {
  std::map<std::string, double> seconds;
  std::map<std::string, long> calls;
  using Clock = std::chrono::steady_clock;
  std::map<uint64_t, std::pair<std::string, Clock::time_point>> open;
  std::vector<std::pair<std::string, Clock::time_point>> regions;
  uint64_t next = 1;
  bool on = false;
};
KernelProfile& profile() {
  static KernelProfile p;
  return p;
}
void prof_begin(const char* name, uint32_t, uint64_t* id) {
  auto& p = profile();
  *id = p.next++;
  if (p.on) p.open[*id] = {name, KernelProfile::Clock::now()};
}
void prof_end(uint64_t id) {
  auto& p = profile();
  auto it = p.open.find(id);
  if (it == p.open.end()) return;
  p.seconds[it->second.first] +=
      std::chrono::duration<double>(KernelProfile::Clock::now() - it->second.second).count();
  p.calls[it->second.first] += 1;
  p.open.erase(it);
}
void prof_push(const char* name) {
  if (profile().on) profile().regions.push_back({name, KernelProfile::Clock::now()});
}
void prof_pop() {
  auto& p = profile();
  if (p.regions.empty()) return;
  p.seconds[p.regions.back().first] +=
      std::chrono::duration<double>(KernelProfile::Clock::now() - p.regions.back().second).count();
  p.calls[p.regions.back().first] += 1;
  p.regions.pop_back();
}
void install_profiler() {
  namespace kt = Kokkos::Tools::Experimental;
  kt::set_begin_parallel_for_callback(prof_begin);
  kt::set_end_parallel_for_callback(prof_end);
  kt::set_begin_parallel_reduce_callback(prof_begin);
  kt::set_end_parallel_reduce_callback(prof_end);
  kt::set_push_region_callback(prof_push);
  kt::set_pop_region_callback(prof_pop);
}
void print_profile(int steps) {
  std::vector<std::pair<double, std::string>> rows;
  double total = 0;
  for (const auto& [k, v] : profile().seconds) {
    rows.push_back({v, k});
    total += v;
  }
  std::sort(rows.rbegin(), rows.rend());
  std::fprintf(stderr, "%-48s %10s %8s %6s\n", "kernel or region", "ms/step", "calls", "%");
  for (const auto& [v, k] : rows)
    std::fprintf(stderr, "%-48s %10.2f %8ld %6.1f\n", k.c_str(), v * 1e3 / steps,
                 profile().calls[k] / steps, 100 * v / total);
  std::fprintf(stderr, "%-48s %10.2f\n", "total", total * 1e3 / steps);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

std::string threads() {
  const char* t = std::getenv("OMP_NUM_THREADS");
  return t ? t : std::to_string(Kokkos::DefaultHostExecutionSpace().concurrency());
}

// The share of the machine's peak a measured rate is: the peak given (--peak-gflops), or on a
// host backend estimated as threads x the clock /proc/cpuinfo reports x the flops a core issues
// a cycle for the precision in use: fp32 64 with AVX-512 (two FMA units of 16 lanes assumed),
// 32 with AVX2 + FMA; bf16 1024 with AMX (TDPBF16PS: 16 x 16 x 32 FMAs in 16 cycles), 128 with
// AVX512-BF16. An estimate (the clock is the nominal one, turbo and AVX frequencies differ), named
// in the output with its basis; null on GPU backends without --peak-gflops.
std::string peak_fields(const Options& o, double gflop_per_s) {
  const bool bf16 = kernels::gemm_precision() == kernels::GemmPrecision::BF16;
  double peak = o.peak_gflops;
  std::string basis = "--peak-gflops";
  if (peak <= 0 && std::is_same<Exec::memory_space, Kokkos::HostSpace>::value) {
    std::ifstream in("/proc/cpuinfo");
    std::string line, flags;
    double mhz = 0;
    while (std::getline(in, line)) {
      if (line.rfind("flags", 0) == 0 && flags.empty()) flags = " " + line.substr(line.find(':') + 1) + " ";
      if (line.rfind("cpu MHz", 0) == 0 && mhz == 0) mhz = std::atof(line.substr(line.find(':') + 1).c_str());
    }
    auto has = [&](const char* f) { return flags.find(cat(" ", f, " ")) != std::string::npos; };
    int per_cycle = 0;
    std::string isa;
    if (bf16 && has("amx_bf16")) per_cycle = 1024, isa = "AMX-BF16";
    else if (bf16 && has("avx512_bf16")) per_cycle = 128, isa = "AVX512-BF16";
    else if (!bf16 && has("avx512f")) per_cycle = 64, isa = "AVX-512, 2 FMA units";
    else if (!bf16 && has("avx2") && has("fma")) per_cycle = 32, isa = "AVX2, 2 FMA units";
    const int t = std::atoi(threads().c_str());
    if (per_cycle > 0 && mhz > 0 && t > 0) {
      peak = t * mhz * 1e-3 * per_cycle;
      basis = cat(t, " cores x ", mhz, " MHz x ", per_cycle, " flop/cycle (", isa, "), estimated");
    }
  }
  if (peak <= 0) return cat(", \"peak_gflop_per_s\": null, \"peak_share\": null");
  return cat(", \"peak_gflop_per_s\": ", peak, ", \"peak_share\": ", gflop_per_s / peak, ", \"peak_basis\": \"",
             bf16 ? "bf16: " : "fp32: ", basis, "\"");
}

std::map<std::string, std::string> parse_json_line(const std::string& out, const std::string& from);

// The OpenMP runtime binds the calling thread to one place when OMP_PROC_BIND is set (libgomp
// already as it loads), and a child started from that thread inherits its single CPU: PyTorch's
// two threads then shared one core, and every --compare-torch figure measured with
// OMP_PROC_BIND before 2026-12-06 ran the reference on one core (docs/performance.md). The
// child is started with every CPU instead (the kernel keeps it to those its cgroup permits).
FILE* popen_unbound(const std::string& cmd) {
  cpu_set_t now, all;
  CPU_ZERO(&now);
  CPU_ZERO(&all);
  for (int c = 0; c < CPU_SETSIZE; ++c) CPU_SET(c, &all);
  const bool restore = sched_getaffinity(0, sizeof now, &now) == 0 &&
                       sched_setaffinity(0, sizeof all, &all) == 0;
  FILE* p = popen(cmd.c_str(), "r");
  if (restore) sched_setaffinity(0, sizeof now, &now);
  return p;
}

// Runs a shell command (with every CPU, as above: the MPI launcher's ranks and the PyTorch
// reference alike); returns its standard output (throws naming `what` on failure).
std::string run_command(const std::string& cmd, const std::string& what) {
  FILE* p = popen_unbound(cmd);
  if (!p) throw Error(cat("cannot run '", cmd, "'"));
  std::string out;
  char buf[4096];
  while (fgets(buf, sizeof buf, p)) out += buf;
  const int rc = pclose(p);
  if (rc != 0) throw Error(cat(what, " failed (", cmd, "): ", out));
  return out;
}

// Runs the PyTorch side; returns its JSON fields (a flat object of numbers and strings).
std::map<std::string, std::string> run_torch(const Options& o) {
  const std::string script = std::string(DMIS_SOURCE_DIR) + "/bench/torch_ref.py";
  std::ostringstream cmd;
  cmd << o.python << " " << script << " " << o.mode << " --preset " << o.preset << " --batch "
      << o.batch << " --warmup " << o.warmup << " --steps " << o.steps << " --threads " << threads();
  if (o.classes > 0) cmd << " --classes " << o.classes;
  return parse_json_line(run_command(cmd.str(), "the PyTorch reference"), "the PyTorch reference");
}

// The fields of the last flat JSON object in `out` (numbers and strings, no nesting).
std::map<std::string, std::string> parse_json_line(const std::string& out, const std::string& from) {
  std::map<std::string, std::string> kv;
  const auto at = out.rfind('{');
  if (at == std::string::npos) throw Error(cat("no JSON from ", from, ": ", out));
  std::string s = out.substr(at + 1, out.rfind('}') - at - 1);
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const auto c = item.find(':');
    auto strip = [](std::string x) {
      x.erase(0, x.find_first_not_of(" \""));
      x.erase(x.find_last_not_of(" \"") + 1);
      return x;
    };
    kv[strip(item.substr(0, c))] = strip(item.substr(c + 1));
  }
  return kv;
}

void fill_batch(const Exec& exec, const Tensor4<float, Exec>& x, const Tensor1<int, Exec>& labels,
                int classes) {
  const int n = x.extent(1) * x.extent(2) * x.extent(3);
  Kokkos::parallel_for(
      "dmis::bench::fill", Kokkos::RangePolicy<Exec>(exec, 0, x.extent(0) * n),
      KOKKOS_LAMBDA(size_t i) {
        const size_t b = i / n;
        (&x(b, 0, 0, 0))[i % n] = float((i * 7919) % 2001) / 1000.0f - 1.0f;
        if (i % n == 0) labels(b) = static_cast<int>(b % (classes + 1));
      });
}

int bench_train_step(const Options& o) {
  const auto cfg = models::UNetConfig::from_preset(o.preset);
  Exec exec;
  const double rss0 = proc_mb("VmRSS:");
  methods::TrainStepConfig tc;
  tc.opt.grad_clip = 1.0;
  const int ranks = dist::size();
  tc.global_batch = o.batch * ranks;
  tc.sample_offset = dist::rank(), tc.sample_stride = ranks;
  methods::EdmTrainStep<Exec> step(cfg, tc, o.batch, o.conv_scratch_mb);
  step.initialize(models::InitScheme::Torch);
  dist::DeviceReducer<Exec> reducer(step.store().grads.extent(0));
  if (ranks > 1)
    step.on_gradients = [&reducer](const Exec& e, const Tensor1<float, Exec>& g) { reducer.sum(e, g); };
  Kokkos::View<float****, Kokkos::LayoutRight, Exec::memory_space> x(
      "dmis::bench::x0", o.batch, cfg.in_channels, cfg.resolution, cfg.resolution);
  Kokkos::View<int*, Kokkos::LayoutRight, Exec::memory_space> labels("dmis::bench::labels", o.batch);
  fill_batch(exec, x, labels, cfg.classes);
  reset_peak_rss();
  if (o.profile) install_profiler();
  for (int i = 0; i < o.warmup; ++i) step.run(exec, x, labels);
  exec.fence();
  profile().on = o.profile;
  std::vector<double> ms;
  dist::barrier();
  for (int i = 0; i < o.steps; ++i) {
    Kokkos::Timer t;
    step.run(exec, x, labels);
    exec.fence();
    ms.push_back(dist::allreduce_max(t.seconds() * 1e3));  // a step ends when every rank's does
  }
  profile().on = false;
  if (o.profile) print_profile(o.steps);
  double loss = 0, gnorm = 0;
  step.read_scalars(loss, gnorm);
  const double peak = proc_mb("VmHWM:");
  const double med = median(ms);
  if (dist::rank() != 0) return 0;
  const double gflop = step.flops_per_step() / 1e9;
  std::ostringstream js;
  js.precision(6);
  js << "{\"bench\": \"train-step\", \"preset\": \"" << o.preset << "\", \"batch\": " << o.batch
     << ", \"ranks\": " << ranks << ", \"global_batch\": " << o.batch * ranks
     << ", \"img_per_s\": " << o.batch * ranks / (med / 1e3) << ", \"step_ms\": " << med
     << ", \"step_ms_min\": " << *std::min_element(ms.begin(), ms.end())
     << ", \"step_ms_max\": " << *std::max_element(ms.begin(), ms.end())
     << ", \"gflop_per_step\": " << gflop * ranks << ", \"gflop_per_s\": " << gflop * ranks / (med / 1e3)
     << ", \"params\": " << step.net().table().total() << ", \"backend\": \"" << Exec::name()
     << "\", \"threads\": " << threads() << ", \"steps\": " << o.steps
     << ", \"loss\": " << loss << ", \"peak_rss_mb\": " << peak
     << ", \"step_mem_mb\": " << peak - rss0
     << ", \"workspace_mb\": " << step.net().workspace_bytes() / 1048576.0 << kernel_fields()
     << peak_fields(o, gflop * ranks / (med / 1e3));
  if (o.compare_torch) {
    const auto t = run_torch(o);
    const double timg = std::atof(t.at("img_per_s").c_str());
    js << ", \"torch_img_per_s\": " << timg << ", \"torch_step_ms\": " << t.at("step_ms")
       << ", \"torch_peak_rss_mb\": " << t.at("peak_rss_mb")
       << ", \"torch_step_mem_mb\": " << t.at("step_mem_mb") << ", \"torch_version\": \""
       << t.at("torch_version") << "\", \"ratio\": " << (o.batch / (med / 1e3)) / timg;
  }
  js << "}";
  std::cout << js.str() << std::endl;
  return 0;
}

int bench_classifier(const Options& o) {
  const auto cfg = models::UNetConfig::from_preset(o.preset);
  const int K = o.classes > 0 ? o.classes : cfg.classes;
  const int BK = o.batch * K;  // every image paired with every class, one forward
  Exec exec;
  const double rss0 = proc_mb("VmRSS:");
  models::UNet<Exec, float> net(cfg);
  net.prepare(BK, o.conv_scratch_mb, /*inference_only=*/true);
  ParamStore<Exec, float> store(net.table(), /*with_optimizer=*/false);
  models::init_params<Exec, float>(exec, cfg, net.table(), store.params, 1, models::InitScheme::Torch);
  const int C = cfg.in_channels, R = cfg.resolution;
  Kokkos::View<float****, Kokkos::LayoutRight, Exec::memory_space> x("dmis::bench::x", BK, C, R, R),
      net_in("dmis::bench::net_in", BK, C, R, R);
  Kokkos::View<int*, Kokkos::LayoutRight, Exec::memory_space> labels("dmis::bench::labels", BK);
  Kokkos::View<float*, Kokkos::LayoutRight, Exec::memory_space> sigma("dmis::bench::sigma", BK),
      c_noise("dmis::bench::c_noise", BK);
  fill_batch(exec, x, labels, K - 1);
  Kokkos::deep_copy(sigma, 0.3f);
  const diffusion::EdmConfig edm;
  auto run = [&]() {
    diffusion::Edm<Exec, float>::scale_input(exec, edm, x, sigma, net_in, c_noise);
    net.forward(exec, store.params, {net_in, c_noise, labels}, false);
  };
  reset_peak_rss();
  if (o.profile) install_profiler();
  for (int i = 0; i < o.warmup; ++i) run();
  exec.fence();
  profile().on = o.profile;
  std::vector<double> ms;
  for (int i = 0; i < o.steps; ++i) {
    Kokkos::Timer t;
    run();
    exec.fence();
    ms.push_back(t.seconds() * 1e3);
  }
  profile().on = false;
  if (o.profile) print_profile(o.steps);
  const double med = median(ms);
  const double gflop = BK * net.forward_flops_per_sample() / 1e9;
  std::ostringstream js;
  js.precision(6);
  js << "{\"bench\": \"classifier\", \"preset\": \"" << o.preset << "\", \"batch\": " << o.batch
     << ", \"classes\": " << K << ", \"img_per_s\": " << o.batch / (med / 1e3)
     << ", \"step_ms\": " << med << ", \"gflop_per_s\": " << gflop / (med / 1e3)
     << ", \"params\": " << net.table().total() << ", \"backend\": \"" << Exec::name()
     << "\", \"threads\": " << threads() << ", \"peak_rss_mb\": " << proc_mb("VmHWM:")
     << ", \"step_mem_mb\": " << proc_mb("VmHWM:") - rss0 << kernel_fields()
     << peak_fields(o, gflop / (med / 1e3));
  if (o.compare_torch) {
    const auto t = run_torch(o);
    const double timg = std::atof(t.at("img_per_s").c_str());
    js << ", \"torch_img_per_s\": " << timg << ", \"torch_step_ms\": " << t.at("step_ms")
       << ", \"torch_chunk\": " << t.at("chunk") << ", \"ratio\": " << (o.batch / (med / 1e3)) / timg;
  }
  js << "}";
  std::cout << js.str() << std::endl;
  return 0;
}

// Weak scaling: train-step under the launcher at each rank count, fixed per-rank batch.
int bench_scaling(const Options& o) {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS"})
    if (const char* n = std::getenv(v); n && std::atoi(n) > 1)
      throw UsageError("run scaling as one process: it launches the ranks itself");
  const int batch = o.batch_set ? o.batch : 16;
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  std::string flags;
  {  // Open MPI wants these to run as root or on fewer cores than ranks
    const std::string v = run_command(o.launcher + " --version 2>&1", "the launcher");
    if (v.find("Open MPI") != std::string::npos || v.find("OpenRTE") != std::string::npos)
      flags = " --allow-run-as-root --oversubscribe --bind-to none";
  }
  double base = 0;
  std::ostringstream summary;
  summary << "{\"bench\": \"scaling\", \"preset\": \"" << o.preset << "\", \"batch_per_rank\": "
          << batch << ", \"threads_per_rank\": " << o.threads_per_rank << ", \"cores\": "
          << std::thread::hardware_concurrency();
  std::cout << "weak scaling of the " << o.preset << " training step: " << batch
            << " images per rank, " << o.threads_per_rank << " thread(s) per rank, "
            << std::thread::hardware_concurrency() << " cores" << std::endl;
  for (int r : o.ranks) {
    std::ostringstream cmd;
    cmd << "OMP_NUM_THREADS=" << o.threads_per_rank << " " << o.launcher << " -n " << r << flags
        << " " << self << " train-step --preset " << o.preset << " --batch " << batch
        << " --warmup " << o.warmup << " --steps " << o.steps << " 2>&1";
    const auto kv = parse_json_line(run_command(cmd.str(), cat("train-step on ", r, " ranks")),
                                    cat("train-step on ", r, " ranks"));
    const double ips = std::atof(kv.at("img_per_s").c_str());
    if (base == 0) base = ips / r;
    const double eff = ips / (r * base);
    std::cout << "  " << r << " rank" << (r > 1 ? "s" : " ") << ": " << std::setprecision(4)
              << ips << " img/s, " << kv.at("step_ms") << " ms/step, efficiency "
              << std::setprecision(3) << eff << std::endl;
    summary << ", \"img_per_s_" << r << "\": " << ips << ", \"efficiency_" << r << "\": " << eff;
  }
  summary << "}";
  std::cout << summary.str() << std::endl;
  return 0;
}

int bench_evaluator(const Options& o) {
  using Xent = kernels::SoftmaxCrossEntropy<Exec, float>;
  using Opt = optim::Optimizer<Exec, float>;
  const int B = o.batch_set ? o.batch : 128;
  models::EvaluatorConfig cfg;
  models::Evaluator<Exec, float> net(cfg);
  net.prepare(B);
  ParamStore<Exec, float> store(net.table());
  Exec exec;
  const Tensor1<float, Exec> params(store.params.data(), store.size()),
      grads(store.grads.data(), store.size()), m(store.adam_m.data(), store.size()),
      v(store.adam_v.data(), store.size());
  models::init_evaluator_params(exec, net.table(), params, 1);
  Kokkos::View<float****, Kokkos::LayoutRight, Exec::memory_space> x(
      "dmis::bench::x0", B, cfg.in_channels, cfg.resolution, cfg.resolution);
  Kokkos::View<int*, Kokkos::LayoutRight, Exec::memory_space> labels("dmis::bench::labels", B);
  Kokkos::View<float*, Kokkos::LayoutRight, Exec::memory_space> probs("dmis::bench::probs", B * cfg.classes),
      ps("dmis::bench::ps", B), tot("dmis::bench::tot", 1);
  fill_batch(exec, x, labels, cfg.classes - 1);
  const Tensor2<float, Exec> P(probs.data(), B, cfg.classes);
  optim::AdamWConfig ac;
  auto step = [&](long s) {
    net.forward(exec, params, x);
    Xent::forward(exec, net.logits(B), labels, P, ps, tot);
    Xent::backward(exec, 1.0f, P, labels, P, GradMode::Overwrite);
    Opt::fill(exec, grads, 0.0f);
    net.backward(exec, params, x, P, grads);
    Opt::adamw(exec, ac, 1e-3, s, params, grads, m, v, Tensor1<const float, Exec>());
  };
  if (o.profile) install_profiler();
  for (int i = 0; i < o.warmup; ++i) step(i + 1);
  exec.fence();
  profile().on = o.profile;
  std::vector<double> ms;
  for (int i = 0; i < o.steps; ++i) {
    Kokkos::Timer t;
    step(o.warmup + i + 1);
    exec.fence();
    ms.push_back(t.seconds() * 1e3);
  }
  profile().on = false;
  if (o.profile) print_profile(o.steps);
  const double med = median(ms), gflop = 3 * net.forward_flops_per_sample() * B / 1e9;
  std::cout << "{\"bench\": \"evaluator\", \"batch\": " << B << ", \"img_per_s\": "
            << B / (med / 1e3) << ", \"step_ms\": " << med << ", \"gflop_per_step\": " << gflop
            << ", \"gflop_per_s\": " << gflop / (med / 1e3) << ", \"params\": "
            << net.table().total() << ", \"backend\": \"" << Exec::name()
            << "\", \"threads\": " << threads() << kernel_fields() << "}" << std::endl;
  return 0;
}

// dmis-step's per-pair figures: each round's DMIS step over the vanilla step timed just before
// it, so that a drift of the machine's own speed (30 % within an hour on the 2-core machines)
// cancels pair by pair: their median, least and largest.
std::string pair_ratio_fields(const std::vector<double>& vanilla, const std::vector<double>& dmis) {
  std::vector<double> r;
  for (size_t i = 0; i < vanilla.size() && i < dmis.size(); ++i) r.push_back(dmis[i] / vanilla[i]);
  if (r.empty()) return "";
  const auto [lo, hi] = std::minmax_element(r.begin(), r.end());
  return cat(", \"pair_ratio_median\": ", median(r), ", \"pair_ratio_min\": ", *lo, ", \"pair_ratio_max\": ", *hi);
}

// The DMIS step of a deck against the vanilla step of the same network and batch.
int bench_dmis_step(const Options& o) {
  if (o.deck.empty()) throw UsageError("dmis-step needs --deck FILE");
  std::vector<std::string> sets = o.sets;
  sets.push_back("method.name=dmis");
  sets.push_back("method.warmup_kimg=0");
  const deck::Deck d = deck::Deck::load(o.deck, sets);
  train::RunPlan plan = train::make_plan(d);
  const int C = 10, B = plan.batch;
  plan.net = train::network_from_deck(d, C);
  Exec exec;
  if (plan.method.supervision == methods::dmis_ops::Supervision::Noisy &&
      plan.method.transition == methods::TransitionMode::Known) {
    // the noise process the deck generates (the trainer reads it from the generated labels;
    // the asymmetric map is Fashion-MNIST's, the default deck's dataset)
    std::vector<int32_t> clean(1000);
    for (size_t i = 0; i < clean.size(); ++i) clean[i] = static_cast<int32_t>(i % C);
    plan.supervision.dataset_name = "fashion-mnist";
    plan.method.known_transition =
        data::noise_transition(data::generate_supervision(clean, C, plan.supervision));
  }
  methods::MethodConfig vanilla = plan.method;
  vanilla.kind = methods::MethodKind::Vanilla;
  methods::MethodStep<Exec> dm(plan.net, plan.step, plan.method, B, plan.conv_scratch_mb),
      vm(plan.net, plan.step, vanilla, B, plan.conv_scratch_mb);
  dm.initialize(plan.init);
  vm.initialize(plan.init);
  const auto& cfg = plan.net;
  Kokkos::View<float****, Kokkos::LayoutRight, Exec::memory_space> x(
      "dmis::bench::x0", B, cfg.out_channels, cfg.resolution, cfg.resolution);
  Kokkos::View<int*, Kokkos::LayoutRight, Exec::memory_space> obs("dmis::bench::observed", B),
      idx("dmis::bench::index", B);
  Kokkos::View<uint8_t**, Kokkos::LayoutRight, Exec::memory_space> cand("dmis::bench::candidates", B, C);
  Kokkos::View<uint8_t*, Kokkos::LayoutRight, Exec::memory_space> lab("dmis::bench::labeled", B);
  fill_batch(exec, x, obs, C - 1);  // labels in [0, C)
  const bool partial = plan.method.supervision == methods::dmis_ops::Supervision::Partial;
  const bool unlabeled = plan.method.supervision == methods::dmis_ops::Supervision::Unlabeled;
  Kokkos::parallel_for(
      "dmis::bench::supervision", Kokkos::RangePolicy<Exec>(exec, 0, B), KOKKOS_LAMBDA(int b) {
        for (int k = 0; k < C; ++k) cand(b, k) = k == obs(b) || (partial && (k * 7 + b) % 3 == 0);
        lab(b) = !unlabeled || b % 10 == 0;
        idx(b) = b;
        if (partial || (unlabeled && !lab(b))) obs(b) = -1;
      });
  exec.fence();
  auto run = [&](methods::MethodStep<Exec>& m) {
    m.run(exec, x, obs, cand, lab, Kokkos::View<const float****, Kokkos::LayoutRight, Exec::memory_space>(), idx);
  };
  if (o.profile) install_profiler();
  for (int i = 0; i < o.warmup; ++i) run(vm), run(dm);
  exec.fence();
  std::vector<double> tv, td;
  for (int i = 0; i < o.steps; ++i) {
    Kokkos::Timer t;
    run(vm);
    exec.fence();
    tv.push_back(t.seconds() * 1e3);
    profile().on = o.profile;
    t.reset();
    run(dm);
    exec.fence();
    td.push_back(t.seconds() * 1e3);
    profile().on = false;
  }
  if (o.profile) print_profile(o.steps);
  const double mv = median(tv), md = median(td);
  std::cout << std::setprecision(6) << "{\"bench\": \"dmis-step\", \"deck\": \"" << o.deck
            << "\", \"supervision\": \"" << methods::name_of(plan.method.supervision) << "\", \"batch\": " << B
            << ", \"params\": " << vm.core().net().table().total()
            << ", \"posterior_samples\": " << dm.posterior_samples()
            << ", \"classifier_samples\": " << dm.classifier_samples_local()
            << ", \"vanilla_ms\": " << mv << ", \"dmis_ms\": " << md
            << ", \"ratio\": " << md / mv << pair_ratio_fields(tv, td) << ", \"evaluations_ratio\": "
            << double(dm.evaluations_per_step(true)) / dm.evaluations_per_step(false)
            << ", \"backend\": \"" << Exec::name() << "\", \"threads\": " << threads()
            << ", \"steps\": " << o.steps << kernel_fields() << "}" << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  setenv("OMP_PROC_BIND", "false", 0);  // see drivers/main.cpp
  Options o;
  try {
    o = parse(argc, argv);
  } catch (const dmis::UsageError& e) {
    std::cerr << "dmis-bench: error: " << e.what() << "\n" << kUsage;
    return 2;
  }
  int rc = 0;
  if (o.mode == "scaling") {  // no MPI or Kokkos here: the launched ranks need a clean start
    try {
      return bench_scaling(o);
    } catch (const dmis::UsageError& e) {
      std::cerr << "dmis-bench: error: " << e.what() << "\n" << kUsage;
      return 2;
    } catch (const dmis::Error& e) {
      std::cerr << "dmis-bench: error: " << e.what() << "\n";
      return e.exit_code();
    }
  }
  dmis::dist::Runtime runtime(argc, argv);
  try {
    rc = o.mode == "train-step"  ? bench_train_step(o)
         : o.mode == "evaluator" ? bench_evaluator(o)
         : o.mode == "dmis-step" ? bench_dmis_step(o)
                                 : bench_classifier(o);
  } catch (const dmis::UsageError& e) {
    std::cerr << "dmis-bench: error: " << e.what() << "\n" << kUsage;
    rc = 2;
  } catch (const dmis::Error& e) {
    std::cerr << "dmis-bench: error: " << e.what() << "\n";
    rc = e.exit_code();
  }
  return rc;
}

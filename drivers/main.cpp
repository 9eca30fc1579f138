// The `dmis` executable: dispatches to a subcommand, maps errors to exit codes
// (0 success, 1 internal error, 2 bad input or usage).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <chrono>
#include <iostream>
#include <new>
#include <thread>
#include <vector>

#include "commands.hpp"
#include "core/error.hpp"
#include "core/version.hpp"
#include "dist/comm.hpp"
#include "io/h5.hpp"
#include "kernels/conv2d.hpp"
#include "kernels/mixed_gemm.hpp"

namespace dmis::cli {

const std::vector<Command>& commands() {
  static const std::vector<Command> table = {
      {"info", "version banner; with --preset, a network's parameter table", "[--preset NAME]",
       cmd_info},
      {"train", "train a diffusion model from a deck (vanilla, dmis, ambient, diffem)",
       "DECK [--set key=value ...]", cmd_train},
      {"sample", "generate images per class with the EDM Heun sampler; samples.h5 + PNG grid",
       "DECK|CHECKPOINT [--out FILE] [--set key=value ...]", cmd_sample},
      {"classify", "diffusion-classifier accuracy and posteriors over a dataset split",
       "DECK|CHECKPOINT [--data FILE] [--split S] [--limit N]", cmd_classify},
      {"eval", "the evaluator classifier, and sample metrics in its features (FD, CAS, ...)",
       "train-evaluator --data F --out E | [metrics] SAMPLES --evaluator E --data F", cmd_eval},
      {"condense", "noisy dataset condensation: a classifier trained on IPC generated images per class",
       "DECK|CHECKPOINT [--ipc 1,10,50,100] [--seeds N]", cmd_condense},
      {"import", "a dataset file from Fashion-MNIST or CIFAR-10, with imprecise labels or corrupted images",
       "fmnist|cifar10 [--src DIR] --out FILE [--supervision SPEC] [--corrupt SPEC]", cmd_import},
      {"check-deck", "validate a deck and print it resolved; --keys lists every key",
       "DECK [--set key=value ...] | --keys [--markdown]", cmd_check_deck},
  };
  return table;
}

std::string usage() {
  std::string s = "usage: dmis <command> [options]\n\ncommands:\n";
  for (const auto& c : commands()) {
    std::string head = std::string("  ") + c.name + " " + c.usage;
    if (head.size() < 34) head.resize(34, ' ');
    s += head + "  " + c.summary + "\n";
  }
  s += "\n`dmis <command> --help` describes a command. Kokkos options (--kokkos-...) are accepted\n"
       "by every command.\n";
  return s;
}

}  // namespace dmis::cli

int main(int argc, char** argv) {
  using namespace dmis;
  h5::prepare_library();  // before any other HDF5 call
  // Usage errors need no runtime: answer them before MPI and Kokkos start.
  if (argc < 2) {
    std::cerr << cli::usage();
    return 2;
  }
  const std::string name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    std::cout << cli::usage();
    return 0;
  }
  const cli::Command* cmd = nullptr;
  for (const auto& c : cli::commands())
    if (name == c.name) cmd = &c;
  if (!cmd) {
    std::cerr << "dmis: error: unknown command '" << name << "'\n\n" << cli::usage();
    return 2;
  }
  // The OpenMP runtime read its environment when it was loaded; an unset OMP_PROC_BIND means
  // "no binding" to it. Saying so explicitly only spares users Kokkos' start-up warning; runs
  // that want binding set OMP_PROC_BIND=spread OMP_PLACES=threads (scripts/quickstart does).
  setenv("OMP_PROC_BIND", "false", /*overwrite=*/0);
  int code = 0;
  // The command's arguments, without Kokkos' own (--kokkos-*, which Kokkos::initialize removes).
  // A bare --help goes to the command only: Kokkos would print its own option list for it first.
  cli::Args args;
  std::vector<char*> kargv;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (i >= 2 && a.rfind("--kokkos-", 0) != 0) args.push_back(a);
    if (i < 2 || a != "--help") kargv.push_back(argv[i]);
  }
  kargv.push_back(nullptr);
  int kargc = static_cast<int>(kargv.size()) - 1;
  char** kargs = kargv.data();
  {
    dist::Runtime runtime(kargc, kargs);
    // An error ends the command with a message and an exit status. Over several ranks it ends
    // the whole job (MPI_Abort), so that no rank waits forever in a collective for one that
    // failed; ranks other than 0 wait a moment first, so that an error every rank meets is
    // reported once, by rank 0.
    const int ranks = dist::size(), rank = dist::rank();
    const std::string who = ranks > 1 ? cat("dmis ", name, " (rank ", rank, " of ", ranks, ")")
                                      : cat("dmis ", name);
    h5::guard_reads(who);  // after MPI_Init, which installs its own signal handlers
    auto fail = [&](int c, const std::string& msg) {
      if (ranks > 1 && rank != 0) std::this_thread::sleep_for(std::chrono::seconds(2));
      std::cerr << msg << std::flush;
      if (ranks > 1) dist::abort_job(c);
      code = c;
    };
    try {
      // the environment's choices before the command makes anything (a run directory, a file):
      // DMIS_CONV_ALGO / DMIS_BF16_LAYOUT are read at the first convolution otherwise
      kernels::conv_algorithm();
      kernels::bf16_layout();
#if !defined(KOKKOS_ENABLE_CUDA) && !defined(KOKKOS_ENABLE_HIP) && !defined(KOKKOS_ENABLE_SYCL)
      // the host BLAS carries every GEMM of a CPU build: say so when it runs far below the CPU
      // (train says it in its banner, on the console and in log.txt; info is the banner)
      if (rank == 0 && name != "info" && name != "train" && name != "check-deck" && name != "import") {
        const std::string w = blas_warning();
        if (!w.empty()) std::cerr << who << ": warning: " << w << "\n" << std::flush;
      }
#endif
      code = cmd->run(args);
    } catch (const UsageError& e) {
      fail(e.exit_code(), cat(who, ": error: ", e.what(), "\nusage: dmis ", name, " ", cmd->usage, "\n"));
    } catch (const Error& e) {
      fail(e.exit_code(), cat(who, ": error: ", e.what(), "\n"));
    } catch (const std::exception& e) {
      // memory that cannot be had (Kokkos' allocation failure on the host or the device, or
      // std::bad_alloc) is a run too large for this machine: the user's to change, exit 2
      const std::string what = e.what();
      if (dynamic_cast<const std::bad_alloc*>(&e) || what.find("failed to allocate") != std::string::npos) {
        const std::string key = name == "train" ? "train.batch"
                                : name == "sample" || name == "condense" ? "sample.batch"
                                : name == "classify" ? "classify.batch" : "the batch size";
        fail(2, cat(who, ": error: out of memory: ", what.substr(0, what.find('\n')),
                    "\n  the run does not fit this machine's memory: lower ", key,
                    " (or use a smaller network)\n"));
      } else {
        fail(1, cat(who, ": internal error: ", what, "\n"));
      }
    }
  }
  return code;
}

#include <iostream>

#include "commands.hpp"
#include "core/error.hpp"
#include "core/version.hpp"
#include "dist/comm.hpp"
#include "kernels/mixed_gemm.hpp"
#include "models/unet.hpp"

namespace dmis::cli {

int cmd_info(const Args& args) {
  std::string preset;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      std::cout << "usage: dmis info [--preset NAME]\n\nPrints the dmis version and git hash, the "
                   "Kokkos version, its enabled backends and\nconcurrency, Kokkos Kernels, MPI and "
                   "HDF5, and the bf16 GEMM (or why there is none). With --preset (unet-s, unet-m, ddpmpp-cifar),\nalso the network's "
                   "parameter table: name, shape, offset in the flat buffer, and the total.\n";
      return 0;
    } else if (a == "--preset") {
      if (i + 1 >= args.size()) throw UsageError("--preset needs a value (unet-s, unet-m, ddpmpp-cifar)");
      preset = args[++i];
    } else if (a.rfind("--preset=", 0) == 0) {
      preset = a.substr(9);
    } else {
      throw UsageError(cat("unknown option '", a, "'"));
    }
  }
  models::UNetConfig cfg;
  if (!preset.empty()) cfg = models::UNetConfig::from_preset(preset);  // fails before printing
  if (dist::rank() != 0) return 0;
  std::cout << banner();
  // the mixed GEMM of train.precision / method.estep_precision / classify.precision: bf16
  // (scripts/quickstart reads this line)
  std::string why;
  if (kernels::gemm_bf16_available<Kokkos::DefaultExecutionSpace>(&why))
    std::cout << "  bf16 GEMM      " << kernels::gemm_bf16_description<Kokkos::DefaultExecutionSpace>()
              << "; row products " << kernels::bf16_layout_name(kernels::bf16_layout())
              << (kernels::cpu_has_amx_bf16() ? " (the CPU has AMX-BF16)" : " (no AMX-BF16)") << "\n";
  else
    std::cout << "  bf16 GEMM      unavailable: " << why << "\n";
  if (!preset.empty()) {
    std::cout << "\nnetwork " << cfg.describe() << "\n\n" << models::unet_param_table(cfg).describe();
  }
  return 0;
}

}  // namespace dmis::cli

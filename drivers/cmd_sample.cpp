#include <Kokkos_Core.hpp>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "commands.hpp"
#include "core/error.hpp"
#include "data/corruption.hpp"
#include "data/dataset.hpp"
#include "diffusion/sampler.hpp"
#include "dist/comm.hpp"
#include "io/atomic_file.hpp"
#include "io/h5.hpp"
#include "io/png.hpp"
#include "generate.hpp"
#include "model_source.hpp"
#include "train/run_files.hpp"

namespace dmis::cli {

namespace fs = std::filesystem;
using Exec = Kokkos::DefaultExecutionSpace;

int cmd_sample(const Args& args) {
  DeckArgs a = split_deck_args(args);
  std::string out, grid;
  for (size_t i = 0; i < a.rest.size(); ++i) {
    const std::string& r = a.rest[i];
    auto value = [&]() -> const std::string& { return option_value(a.rest, i); };
    if (r == "--help" || r == "-h") {
      std::cout << "usage: dmis sample DECK|CHECKPOINT [--out FILE.h5] [--grid FILE.png] "
                   "[--set key=value ...]\n\n"
                   "Generates sample.per_class images of every class with the EDM Heun sampler "
                   "(sample.* keys:\nsteps, churn, guidance, seed) from the EMA weights of a "
                   "checkpoint, or of the newest\nEMA snapshot of a deck's run. Writes "
                   "samples.h5 (datasets images (N, C, H, W) in [-1, 1]\nand labels (N)) and a "
                   "PNG grid with one row per class, in the run directory by default.\n";
      return 0;
    } else if (r == "--out") {
      out = value();
    } else if (r == "--grid") {
      grid = value();
    } else {
      throw UsageError(cat("unknown option '", r, "'"));
    }
  }
  const ModelSource m = load_model_source(a);
  const deck::Deck& d = m.deck;
  if (out.empty()) out = (fs::path(m.run_dir) / "samples.h5").string();
  if (grid.empty()) grid = (fs::path(out).parent_path() / (fs::path(out).stem().string() + ".png")).string();
  check_output_file("--out", out);
  check_output_file("--grid", grid);

  const Generation g = generate(m, static_cast<int>(d.get_int("sample.per_class")), -1, "dmis sample");
  const diffusion::SamplerConfig& sc = g.sampler;
  const bool use_ema = g.use_ema;
  const int K = m.net.classes, per = g.per_class, total = K * per;
  const int C = m.net.out_channels, R = m.net.resolution;
  const auto& all = g.images;
  const auto& all_labels = g.labels;
  const size_t clipped = g.clipped;
  const bool root = dist::rank() == 0;
  if (!root) return 0;
  {
    io::AtomicFile file(out);
    h5::File f(file.tmp(), h5::File::Mode::Create);
    f.write("/images", {static_cast<size_t>(total), static_cast<size_t>(C), static_cast<size_t>(R),
                        static_cast<size_t>(R)},
            all.data());
    f.write("/labels", {static_cast<size_t>(total)}, all_labels.data());
    f.set_attr("/", "checkpoint", m.checkpoint);
    f.set_attr("/", "step", int64_t(m.data.step));
    f.set_attr("/", "weights", std::string(use_ema ? "ema" : "raw"));
    f.set_attr("/", "sampler", std::string("edm-heun"));
    f.set_attr("/", "steps", int64_t(sc.steps));
    f.set_attr("/", "churn", sc.churn);
    f.set_attr("/", "guidance", sc.guidance);
    f.set_attr("/", "seed", int64_t(sc.seed));
    f.set_attr("/", "classes", int64_t(K));
    f.set_attr("/", "clipped_values", int64_t(clipped));
    f.close();  // checked before anything is renamed into place
    // the grid first: where it fails, the samples file is left as it was
    png::write_grid(grid, all, total, C, R, R, K, per);
    file.commit();
  }
  const double frac = static_cast<double>(clipped) / static_cast<double>(all.size());
  if (frac > 0.01)
    std::cout << "dmis sample: note: " << 100.0 * frac << " % of the values fell outside [-1, 1] "
              << "and were clipped (an undertrained model?)" << std::endl;
  std::cout << "dmis sample: wrote " << out << " and " << grid << " (" << total << " images in "
            << g.seconds << " s)" << std::endl;
  return 0;
}

}  // namespace dmis::cli

#include "generate.hpp"

#include <Kokkos_Core.hpp>
#include <iostream>

#include "core/error.hpp"
#include "data/corruption.hpp"
#include "data/dataset.hpp"
#include "dist/comm.hpp"

namespace dmis::cli {

using Exec = Kokkos::DefaultExecutionSpace;

namespace {

template <class T>
using DView = Kokkos::View<T, Kokkos::LayoutRight, Exec::memory_space>;

/// sample.* (the seed: `seed` when >= 0, else sample.seed, else run.seed).
diffusion::SamplerConfig sampler_config(const deck::Deck& d, long seed) {
  diffusion::SamplerConfig sc;
  sc.steps = static_cast<int>(d.get_int("sample.steps"));
  sc.sigma_min = d.get_float("sample.sigma_min");
  sc.sigma_max = d.get_float("sample.sigma_max");
  sc.rho = d.get_float("sample.rho");
  sc.churn = d.get_float("sample.churn");
  sc.guidance = d.get_float("sample.guidance");
  sc.clip_denoised = d.get_bool("sample.clip_denoised");
  const long sseed = d.get_int("sample.seed");
  sc.seed = sseed >= 0 ? static_cast<uint64_t>(sseed) : static_cast<uint64_t>(d.get_int("run.seed"));
  if (seed >= 0) sc.seed = static_cast<uint64_t>(seed);
  return sc;
}

/// Ambient Diffusion: every sample gets a fixed mask that keeps a pixel with the probability the
/// training inputs had, (1 - p)(1 - delta), p the dataset's missing rate.
double ambient_keep(const deck::Deck& d, int R, bool root, const std::string& who) {
  const std::string data_path = d.get_string("data.path");
  const std::string spec = data::read_train_corruption(data_path);
  data::Corruption c;
  if (!spec.empty() && spec != "unknown") c = data::parse_corruption(spec);
  const double keep = (c.none() ? 1.0 : c.observed_fraction(R, R)) * (1.0 - d.get_float("method.delta"));
  if (root)
    std::cout << who << ": Ambient sampler, fixed masks keeping " << keep << " of the pixels (data '"
              << data_path << "': " << (spec.empty() ? "clean" : spec) << ", method.delta "
              << d.get_float("method.delta") << ")" << std::endl;
  return keep;
}

}  // namespace

Generation generate(const ModelSource& m, int per_class, long seed, const std::string& who) {
  const deck::Deck& d = m.deck;
  const diffusion::SamplerConfig sc = sampler_config(d, seed);
  diffusion::EdmConfig edm;
  edm.P_mean = d.get_float("diffusion.P_mean");
  edm.P_std = d.get_float("diffusion.P_std");
  edm.sigma_data = d.get_float("diffusion.sigma_data");
  const bool use_ema = d.get_bool("sample.use_ema");
  if (!use_ema && m.data.params.empty())
    d.fail("sample.use_ema", cat("false, but '", m.checkpoint, "' is an EMA snapshot without "
                                 "the raw parameters; use a ckpt-*.h5 file"));

  const int K = m.net.classes, per = per_class;
  const int total = K * per;
  // ranks share the images: rank r generates [lo, hi), noise keyed by the global index
  const auto [lo, hi] = dist::share(total);
  const int mine = static_cast<int>(hi - lo);
  const int Bmax = std::max(1, std::min<int>(static_cast<int>(d.get_int("sample.batch")), mine));
  const int C = m.net.out_channels, R = m.net.resolution;
  const bool root = dist::rank() == 0;
  const bool ambient = m.net.in_channels == m.net.out_channels + 1;
  const double keep = ambient ? ambient_keep(d, R, root, who) : 1.0;
  if (root)
    std::cout << who << ": " << total << " images (" << per << " per class, " << K
              << " classes) from " << m.checkpoint << " (step " << m.data.step << ", "
              << (use_ema ? "EMA" : "raw") << " weights), " << sc.steps << " Heun steps, churn "
              << sc.churn << ", guidance " << sc.guidance
              << (dist::size() > 1 ? cat(", over ", dist::size(), " ranks") : std::string())
              << std::endl;

  Exec exec;
  models::UNet<Exec, float> net(m.net);
  net.prepare(Bmax, 0, /*inference_only=*/true);
  const DView<float*> params = device_weights(m, use_ema, "dmis::sample::params");
  DView<float****> amask("dmis::sample::ambient_mask", ambient ? Bmax : 0, 1, R, R);
  auto denoiser = ambient ? diffusion::ambient_denoiser<Exec>(net, params, edm, amask)
                          : diffusion::unet_denoiser<Exec>(net, params, edm);
  diffusion::HeunSampler<Exec> sampler(Bmax, C, R, R);
  DView<int*> labels("dmis::sample::labels", Bmax);
  DView<float****> img("dmis::sample::images", Bmax, C, R, R);
  auto hl = Kokkos::create_mirror_view(labels);
  std::vector<float> all(static_cast<size_t>(mine) * C * R * R);
  std::vector<int32_t> all_labels(mine);
  Kokkos::Timer timer;
  size_t clipped = 0;
  for (int first = 0; first < mine; first += Bmax) {
    const int nb = std::min(Bmax, mine - first);
    for (int b = 0; b < Bmax; ++b)  // global image lo + first + b; the last batch is padded
      hl(b) = static_cast<int>(std::min<long>(lo + first + b, total - 1) / per);
    Kokkos::deep_copy(labels, hl);
    if (ambient) diffusion::ambient_masks<Exec>(exec, sc.seed, keep, static_cast<uint32_t>(lo + first), amask);
    sampler.run(exec, sc, denoiser, labels, K, static_cast<uint32_t>(lo + first), img);
    auto hi = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), img);
    const size_t n = static_cast<size_t>(C) * R * R;
    // the sampler's output is clipped to the data range, as images are when they are saved
    for (int b = 0; b < nb; ++b) {
      for (size_t i = 0; i < n; ++i) {
        const float v = hi.data()[b * n + i];
        if (!(v >= -1.0f && v <= 1.0f)) ++clipped;
        all[(first + b) * n + i] = v < -1.0f ? -1.0f : v > 1.0f ? 1.0f : v;
      }
      all_labels[first + b] = hl(b);
    }
    if (root)
      std::cout << "  " << first + nb << "/" << mine << " images"
                << (dist::size() > 1 ? " of rank 0" : "") << ", "
                << static_cast<int>((first + nb) / timer.seconds()) << " img/s" << std::endl;
  }
  Generation g;
  g.images = dist::gather(all);  // every rank's share, in order, on rank 0
  g.labels = dist::gather(all_labels);
  double c = static_cast<double>(clipped);
  dist::allreduce_sum(&c, 1);
  g.clipped = static_cast<size_t>(c);
  g.per_class = per;
  g.sampler = sc;
  g.use_ema = use_ema;
  g.seconds = timer.seconds();
  return g;
}

}  // namespace dmis::cli

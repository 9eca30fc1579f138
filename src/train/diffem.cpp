// `dmis train` with method.name: diffem (spec/method.md section 5; DiffEM, Rozet et al.).
//
// The run directory holds the EM laps under diffem/ and, at the end, the final model as a plain
// run (ckpt-*/ema-* in the run directory itself, trained by train_run() from the plan that
// diffem_laps returns, on the last reconstructions; its deck.yaml records that run, so that dmis
// sample and dmis classify use it like any other):
//
//   diffem/log.txt, stats.jsonl  one record per lap: M-step loss, reconstruction error against
//                                the clean images when the dataset keeps them (--keep-clean)
//   diffem/lap-NN.h5             after lap NN: the reconstructions and the posterior denoiser's
//                                training state (a resumed run restarts after the last one)
//   diffem/reconstructions.h5    the last reconstructions as a dmis dataset (uint8 images, the
//                                dataset's labels, its test split): the final model's data
//
// The posterior denoiser D(x_sigma; sigma, y) is the deck's UNet with the observation y and its
// mask as 1 + C extra input channels. Lap 0 reconstructs by a simple rule (diffem.start); lap
// k >= 1 trains the denoiser on (reconstruction, fresh corruption of it) pairs, corruption round
// k through the dataset's own channel, warm-started from lap k - 1, then samples a new
// reconstruction of every observation with the Heun sampler (E-step, the images shared over
// the ranks and summed back).
#include <Kokkos_Core.hpp>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <sstream>

#include "core/error.hpp"
#include "data/corruption.hpp"
#include "data/dataset.hpp"
#include "diffusion/sampler.hpp"
#include "dist/comm.hpp"
#include "dist/reduce.hpp"
#include "io/checkpoint.hpp"
#include "io/h5.hpp"
#include "io/json_line.hpp"
#include "kernels/tensor_ops.hpp"
#include "methods/edm_step.hpp"
#include "methods/method_choices.hpp"
#include "train/checkpointer.hpp"
#include "train/device_data.hpp"
#include "train/ppca.hpp"
#include "train/run_files.hpp"
#include "train/diffem_plan.hpp"
#include "train/trainer.hpp"

namespace dmis::train {

namespace fs = std::filesystem;

namespace {

using Exec = Kokkos::DefaultExecutionSpace;
template <class T>
using DView = Kokkos::View<T, Kokkos::LayoutRight, Exec::memory_space>;

std::string lap_path(const std::string& dir, int lap) {
  std::ostringstream os;
  os << dir << "/lap-" << std::setw(2) << std::setfill('0') << lap << ".h5";
  return os.str();
}


// Reconstruction error against the clean images: MSE over all pixels and over the missing
// ones, and the PSNR of the first (images in [-1, 1]: peak-to-peak 2).
struct ReconError {
  double mse = NAN, mse_missing = NAN, psnr = NAN;
};
ReconError recon_error(const std::vector<float>& recon, const std::vector<uint8_t>& clean,
                       const std::vector<uint8_t>& masks, int C, int HW) {
  ReconError e;
  if (clean.empty() || clean.size() != recon.size()) return e;
  double s = 0, sm = 0;
  size_t nm = 0;
  for (size_t i = 0; i < recon.size(); ++i) {
    const double r = std::max(-1.0f, std::min(1.0f, recon[i]));
    const double d = r - (clean[i] / 127.5 - 1.0);
    s += d * d;
    const size_t img = i / (static_cast<size_t>(C) * HW), p = i % HW;
    if (!masks[img * HW + p]) sm += d * d, ++nm;
  }
  e.mse = s / recon.size();
  e.mse_missing = nm ? sm / nm : NAN;
  e.psnr = 10 * std::log10(4.0 / e.mse);
  return e;
}

/// A number in a log line (4 significant digits unless given).
std::string num(double v, int prec = 4) { return io::json_number(v, prec); }


/// The laps already complete in `dir` under the plan's resume policy (0: start with lap 0).
int laps_done(const RunPlan& plan, const DiffemPlan& dp, const std::string& dir) {
  int done = 0;
  if (plan.resume.mode == Resume::Mode::None) {
    if (fs::exists(lap_path(dir, 0)) || RunFiles(plan.run_dir, false).holds_run())
      plan.resume_key.fail(cat("the run directory '", plan.run_dir, "' already holds a run; set "
                               "run.resume: latest to continue it, or choose another run.name"));
  } else if (plan.resume.mode == Resume::Mode::Latest) {
    if (!fs::exists(lap_path(dir, 0)))
      plan.resume_key.fail(cat("'latest', but '", dir, "' holds no complete DiffEM lap"));
    while (done < dp.laps && fs::exists(lap_path(dir, done + 1))) ++done;
  } else {
    plan.resume_key.fail("diffem resumes from its laps: use none or latest");
  }
  return done;
}

/// The corrupted training set, its channel, the posterior denoiser's network (the deck's with
/// the observation and its mask as 1 + C extra input channels) and the clean images where the
/// dataset keeps them (for the reconstruction error only).
struct Observations {
  data::Dataset ds;
  data::Corruption channel;
  models::UNetConfig post_net;
  std::vector<uint8_t> clean;
};

Observations read_observations(const RunPlan& plan, const DiffemPlan& dp) {
  Observations o;
  o.ds = data::read_dataset(plan.data_path, /*with_test=*/true, plan.train_limit);
  const auto& tr = o.ds.train;
  if (!tr.corrupted())
    plan.method_key.fail(cat("diffem learns from corrupted images, but the training split of '",
                              plan.data_path, "' holds clean images (make one with dmis import "
                              "--corrupt SPEC)"));
  if (tr.corruption == "unknown")
    plan.method_key.fail(cat("diffem corrupts its reconstructions afresh through the dataset's "
                              "channel, but '", plan.data_path, "' does not record it (attribute "
                              "/train corruption)"));
  o.channel = data::parse_corruption(tr.corruption);
  if (dp.ppca_start() && (o.channel.kind == data::Corruption::Kind::Blur || o.channel.noise > 0))
    dp.start_key.fail(cat("the ppca start integrates out missing pixels of noise-free "
                               "observations; the data's channel is ", o.channel.spec(),
                               " (use mean or observation)"));
  const models::UNetConfig final_net = resolve_network(plan.net, o.ds.classes, plan.preset_key);
  const std::string bad = data::image_shape_mismatch(tr, plan.data_path, final_net.out_channels,
                                                     final_net.resolution);
  if (!bad.empty()) plan.preset_key.fail(bad);
  o.post_net = final_net;
  o.post_net.in_channels = tr.C + tr.C + 1;  // [x, y, mask]
  try {
    o.clean = data::read_clean_images(plan.data_path, plan.train_limit);
  } catch (const InputError&) {
    o.clean.clear();  // no ground truth kept: no reconstruction error
  }
  return o;
}

/// The start's reconstructions on the host: the observations, with the missing pixels at the
/// per-pixel mean of the observed ones (start mean) or left at 0 (start observation).
std::vector<float> simple_start(const data::Split& tr, DiffemStart start) {
  const int C = tr.C, HW = tr.H * tr.W, N = tr.N;
  const size_t n_img = static_cast<size_t>(C) * HW;
  std::vector<float> out(tr.observations);
  if (start != DiffemStart::Mean) return out;
  std::vector<double> sum(n_img, 0.0), cnt(HW, 0.0);
  for (int i = 0; i < N; ++i)
    for (int p = 0; p < HW; ++p)
      if (tr.masks[static_cast<size_t>(i) * HW + p]) {
        cnt[p] += 1;
        for (int c = 0; c < C; ++c) sum[c * HW + p] += tr.observations[i * n_img + c * HW + p];
      }
  for (int i = 0; i < N; ++i)
    for (int p = 0; p < HW; ++p)
      if (!tr.masks[static_cast<size_t>(i) * HW + p])
        for (int c = 0; c < C; ++c)
          out[i * n_img + c * HW + p] = cnt[p] > 0 ? static_cast<float>(sum[c * HW + p] / cnt[p]) : 0.f;
  return out;
}

/// The EM laps on the device: the observations, the current reconstructions, the posterior
/// denoiser's training step and the E-step's sampler, allocated once.
class Laps {
public:
  Laps(const RunPlan& plan, const DiffemPlan& dp, const Observations& o, const std::string& dir,
       RunFiles& files, bool root)
      : m_plan(plan), m_dp(dp), m_o(o), m_tr(o.ds.train), m_dir(dir), m_files(files), m_root(root),
        m_ranks(dist::size()), m_B(plan.batch / m_ranks), m_C(m_tr.C), m_R(m_tr.H), m_HW(m_R * m_R),
        m_N(m_tr.N), m_K(o.ds.classes), m_n_img(static_cast<size_t>(m_C) * m_HW),
        m_y("dmis::diffem::observations", m_N * m_n_img), m_recon("dmis::diffem::recon", m_N * m_n_img),
        m_masks("dmis::diffem::masks", static_cast<size_t>(m_N) * m_HW), m_labels("dmis::diffem::labels", m_N),
        m_core(o.post_net, plan.step, m_B, plan.conv_scratch_mb),
        m_reducer(std::max(m_core.store().grads.extent(0), m_N * m_n_img)),
        m_channel(o.channel, m_R, m_R, m_tr.corruption_seed ^ plan.seed),
        m_x0("dmis::diffem::x0", m_B, m_C, m_R, m_R), m_obs("dmis::diffem::obs", m_B, m_C, m_R, m_R),
        m_mk("dmis::diffem::mask", m_B, 1, m_R, m_R), m_cond("dmis::diffem::cond", m_B, m_C + 1, m_R, m_R),
        m_idx("dmis::diffem::index", m_B), m_lab_b("dmis::diffem::labels_b", m_B),
        m_lab_d("dmis::diffem::labels_dropped", m_B), m_loss_acc("dmis::diffem::loss_sum", 1),
        m_loss_host(Kokkos::create_mirror_view(m_loss_acc)), m_Bs(dp.sample_batch), m_snet(o.post_net),
        m_scond("dmis::diffem::sample_cond", m_Bs, m_C + 1, m_R, m_R),
        m_sout("dmis::diffem::sample_out", m_Bs, m_C, m_R, m_R), m_slab("dmis::diffem::sample_labels", m_Bs),
        m_sampler(m_Bs, m_C, m_R, m_R) {
    m_snet.prepare(m_Bs, 0, /*inference_only=*/true);
    from_host(m_y, m_tr.observations);
    from_host(m_masks, m_tr.masks);
    std::vector<int> lab(m_tr.labels.begin(), m_tr.labels.end());
    for (auto& l : lab)
      if (l < 0) l = m_K;  // no label: the "no label" token
    from_host(m_labels, lab);
    if (m_ranks > 1)
      m_core.on_gradients = [this](const Exec& e, const Tensor1<float, Exec>& g) { m_reducer.sum(e, g); };
  }

  Laps(const Laps&) = delete;
  Laps& operator=(const Laps&) = delete;

  /// Lap 0: the start's reconstructions (ppca, mean or observation) and a fresh denoiser.
  void start() {
    m_core.initialize(m_plan.init);
    if (m_dp.ppca_start()) {
      const PpcaConfig& pc = m_dp.ppca;
      const auto t0 = std::chrono::steady_clock::now();
      const bool root = m_root;
      const PpcaResult fit = ppca_start(m_y, m_masks, m_N, m_C, m_HW, pc, m_recon, [&](int it, double v) {
        if (root && (it % 5 == 0 || it == pc.iters))
          std::cout << "lap 0: PPCA EM iteration " << it << "/" << pc.iters << " | noise variance "
                    << num(v, 4) << std::endl;
      });
      if (m_root)
        m_files.log(cat("lap 0: PPCA prior of rank ", pc.rank, " after ", pc.iters, " EM iterations: ",
                        "noise variance ", num(fit.v, 4), ", ", num(100 * fit.explained, 3),
                        " % of the observed values' variance explained; ",
                        pc.sample ? "a posterior draw" : "the posterior mean", " per observation (",
                        num(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 3),
                        " s)"));
    } else {
      from_host(m_recon, simple_start(m_tr, m_dp.start));
    }
    save(0, NAN, 0);
  }

  /// The state after lap `lap` (its denoiser and reconstructions) back on the device.
  void resume(int lap) {
    const std::string path = lap_path(m_dir, lap);
    auto& store = m_core.store();
    const io::CheckpointData ck = io::read_checkpoint(path, &m_core.net().table());
    state_from_checkpoint(ck, store);
    m_core.set_step(ck.step);
    h5::File f(path + ".recon", h5::File::Mode::Read);
    const auto r = f.read_float("/reconstructions");
    if (r.data.size() != m_N * m_n_img)
      throw InputError(cat("'", path, ".recon' holds ", r.data.size(), " values, expected ", m_N * m_n_img,
                           " (the reconstructions of ", m_N, " images)"));
    from_host(m_recon, r.data);
    if (m_root) m_files.log(cat("resumed after lap ", lap, " (step ", ck.step, ")"));
  }

  /// Lap `lap` >= 1: the M-step, the E-step, then the lap's files.
  void run(int lap) {
    const auto t0 = std::chrono::steady_clock::now();
    const double loss = m_step(lap);
    e_step(lap);
    save(lap, loss, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }

  /// The last reconstructions as a dmis dataset at the plan's `reconstructions` (rank 0).
  void write_reconstructions() const;

  // public only because their device lambdas need it: nvcc rejects an extended lambda whose
  // enclosing function is private or protected; called by run alone
  double m_step(int lap);
  void e_step(int lap);

private:
  void save(int lap, double loss, double seconds);

  const RunPlan& m_plan;
  const DiffemPlan& m_dp;
  const Observations& m_o;
  const data::Split& m_tr;
  std::string m_dir;
  RunFiles& m_files;
  bool m_root;
  int m_ranks, m_B, m_C, m_R, m_HW, m_N, m_K;
  size_t m_n_img;
  Exec m_exec;
  DView<float*> m_y, m_recon;  // (N * C * HW) observations, reconstructions
  DView<float*> m_masks;       // (N * HW)
  DView<int*> m_labels;        // (N) observed labels, K for none
  methods::EdmTrainStep<Exec> m_core;
  dist::DeviceReducer<Exec> m_reducer;
  // the M-step's batch of B pairs
  data::CorruptionKernel m_channel;
  DView<float****> m_x0, m_obs, m_mk, m_cond;  // (B, C, R, R) clean, corrupted; (B, 1, R, R) mask;
                                               // (B, C + 1, R, R) [corrupted, mask]
  DView<int*> m_idx, m_lab_b, m_lab_d;         // (B) images, their labels, after the drop
  DView<float*> m_loss_acc;                    // (1) the loss summed over a progress window
  DView<float*>::HostMirror m_loss_host;
  // the E-step's batch of Bs observations: the sampling network (inference workspace only)
  int m_Bs;
  models::UNet<Exec, float> m_snet;
  DView<float****> m_scond, m_sout;  // (Bs, C + 1, R, R) [observation, mask]; (Bs, C, R, R) sample
  DView<int*> m_slab;                // (Bs)
  diffusion::HeunSampler<Exec> m_sampler;
};

/// The M-step of lap `lap`: the posterior denoiser on (reconstruction, fresh corruption of it)
/// pairs, corruption round `lap`. Returns the mean loss of the lap's last progress window.
double Laps::m_step(int lap) {
  const int B = m_B;
  const size_t n_img = m_n_img;
  const auto x0 = m_x0, obs = m_obs, mk = m_mk, cond = m_cond;
  const auto idx = m_idx, lab_b = m_lab_b, lab_d = m_lab_d;
  const auto loss_acc = m_loss_acc;
  const auto labels = m_labels;
  const auto recon = m_recon;
  const uint32_t N32 = static_cast<uint32_t>(m_N);
  const uint64_t data_seed = m_plan.seed ^ 0xD1FFE3ull;
  const rng::SampleIds ids = m_plan.step.ids();
  const Exec exec = m_exec;
  const long steps = m_dp.lap_steps, every = m_plan.log_every;
  Kokkos::deep_copy(loss_acc, 0.0f);
  auto t_log = std::chrono::steady_clock::now();
  double lap_loss = NAN;
  for (long s = 0; s < steps; ++s) {
    const long g = m_core.step();  // continues over the laps: draws never repeat
    const uint64_t first = static_cast<uint64_t>(g) * m_plan.batch;
    Kokkos::parallel_for(
        "dmis::diffem::gather", Kokkos::RangePolicy<Exec>(exec, 0, B), KOKKOS_LAMBDA(int b) {
          const uint32_t i = DeviceData<Exec>::index_at(first + ids(b), N32, data_seed);
          idx(b) = static_cast<int>(i);
          lab_b(b) = labels(i);
        });
    // the images as one flat copy (coalesced on a GPU), after the indices
    Kokkos::parallel_for(
        "dmis::diffem::gather_images", Kokkos::RangePolicy<Exec>(exec, 0, static_cast<size_t>(B) * n_img),
        KOKKOS_LAMBDA(size_t r) {
          const size_t b = r / n_img, e = r % n_img;
          x0.data()[r] = recon(static_cast<size_t>(idx(b)) * n_img + e);
        });
    data::corrupt<Exec>(exec, m_channel, static_cast<uint32_t>(lap), idx, x0, obs, mk);
    kernels::Concat<Exec, float>::forward(exec, obs, mk, cond);
    m_core.begin(exec);
    m_core.drop_labels(exec, lab_b, lab_d);
    m_core.sample_inputs(exec, x0, Tensor4<const float, Exec>(), cond);
    m_core.generative_loss(exec, x0, lab_d, Tensor1<const float, Exec>(), Tensor4<const float, Exec>());
    m_core.finish(exec);
    auto l = m_core.loss();
    Kokkos::parallel_for(
        "dmis::diffem::loss_sum", Kokkos::RangePolicy<Exec>(exec, 0, 1),
        KOKKOS_LAMBDA(int) { loss_acc(0) += l(0); });
    const long done = s + 1;
    if (done % every != 0 && done != steps) continue;
    Kokkos::fence();
    const auto now = std::chrono::steady_clock::now();
    const double dt = std::chrono::duration<double>(now - t_log).count();
    t_log = now;
    Kokkos::deep_copy(m_loss_host, loss_acc);
    double lh = m_loss_host(0);
    dist::allreduce_sum(&lh, 1);
    lh /= m_ranks;
    const long since = done % every == 0 ? every : done % every;
    lap_loss = lh / since;
    if (m_root)
      m_files.log(cat("lap ", lap, "/", m_dp.laps, " M-step ", done, "/", steps, " | loss ", num(lh / since),
                      " | ", num(since * m_plan.batch / dt, 4), " img/s | ETA M-step ",
                      num(dt / since * (steps - done), 3), " s"));
    if (!std::isfinite(lh))
      throw Error(cat("DiffEM lap ", lap, " step ", done, ": the loss is not a number; lower "
                      "train.lr, then resume (run.resume: latest restarts this lap)"));
    Kokkos::deep_copy(loss_acc, 0.0f);
  }
  return lap_loss;
}

/// The E-step of lap `lap`: a posterior sample (Heun, EMA weights) for every observation; rank
/// r takes its share [lo, hi) and the images are summed back over the ranks.
void Laps::e_step(int lap) {
  const int Bs = m_Bs, C = m_C, HW = m_HW;
  const size_t n_img = m_n_img;
  const auto scond = m_scond, sout = m_sout;
  const auto slab = m_slab;
  auto denoiser = diffusion::conditional_denoiser<Exec>(m_snet, m_core.store().ema, m_plan.step.edm, scond);
  diffusion::SamplerConfig sc = m_dp.sampler;
  sc.seed = m_plan.seed * 1000003ull + static_cast<uint64_t>(lap);
  const auto shard = dist::share(m_N);
  const long lo = static_cast<long>(shard.first), hi = static_cast<long>(shard.second);
  const auto recon = m_recon, y = m_y, masks = m_masks;
  const auto labels = m_labels;
  const int ranks = m_ranks;
  const Exec exec = m_exec;
  Kokkos::parallel_for(
      "dmis::diffem::clear_others", Kokkos::RangePolicy<Exec>(exec, 0, recon.extent(0)), KOKKOS_LAMBDA(size_t e) {
        const size_t i = e / n_img;
        if (ranks > 1 && (i < static_cast<size_t>(lo) || i >= static_cast<size_t>(hi))) recon(e) = 0.f;
      });
  const auto te = std::chrono::steady_clock::now();
  for (long first = lo; first < hi; first += Bs) {
    const int nb = static_cast<int>(std::min<long>(Bs, hi - first));
    Kokkos::parallel_for(
        "dmis::diffem::estep_cond", Kokkos::RangePolicy<Exec>(exec, 0, Bs), KOKKOS_LAMBDA(int b) {
          const size_t i = static_cast<size_t>(first + (b < nb ? b : nb - 1));  // pad the last batch
          slab(b) = labels(i);
          for (int c = 0; c < C; ++c)
            for (int p = 0; p < HW; ++p) (&scond(b, c, 0, 0))[p] = y(i * n_img + c * HW + p);
          for (int p = 0; p < HW; ++p) (&scond(b, C, 0, 0))[p] = masks(i * HW + p);
        });
    m_sampler.run(exec, sc, denoiser, slab, m_K, static_cast<uint32_t>(first), sout);
    Kokkos::parallel_for(
        "dmis::diffem::estep_store", Kokkos::RangePolicy<Exec>(exec, 0, static_cast<size_t>(nb) * n_img),
        KOKKOS_LAMBDA(size_t e) {
          const float v = sout.data()[e];
          recon(static_cast<size_t>(first) * n_img + e) = v < -1.f ? -1.f : (v > 1.f ? 1.f : v);
        });
    if (m_root && ((first - lo) / Bs) % 10 == 9) {
      Kokkos::fence();
      const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - te).count();
      const double done_imgs = static_cast<double>(first + nb - lo);
      m_files.log(cat("lap ", lap, "/", m_dp.laps, " E-step ", first + nb - lo, "/", hi - lo, " images",
                      ranks > 1 ? " of rank 0" : "", " | ", num(done_imgs / dt, 4), " img/s | ETA ",
                      num(dt / done_imgs * (hi - first - nb), 3), " s"));
    }
  }
  if (ranks > 1) m_reducer.sum(exec, Tensor1<float, Exec>(recon.data(), recon.extent(0)));
}

/// lap-NN.h5 (the denoiser's state) with lap-NN.h5.recon (the reconstructions) beside it, the
/// log line and the stats record of the lap.
void Laps::save(int lap, double loss, double seconds) {
  Kokkos::fence();
  const std::vector<float> hr = to_host(m_recon);
  const ReconError err = recon_error(hr, m_o.clean, m_tr.masks, m_C, m_HW);
  if (!m_root) return;
  const auto& store = m_core.store();
  io::CheckpointData ck;
  ck.kind = "training-state";
  ck.step = m_core.step();
  ck.images_seen = m_core.images_seen();
  ck.seed = m_plan.seed;
  ck.deck = m_plan.deck_text;
  ck.preset = m_o.post_net.preset;
  ck.table = m_core.net().table();
  state_to_checkpoint(store, ck);
  // the state first (into lap-NN.h5.part), then the reconstructions beside it (written
  // atomically to lap-NN.h5.recon); the lap counts as complete only when lap-NN.h5 exists,
  // which is renamed last. A failure on the way leaves no .part behind.
  io::AtomicFile lap_file(lap_path(m_dir, lap), ".part");
  io::write_checkpoint(lap_file.tmp(), ck);
  h5::write_atomic(lap_file.path() + ".recon", [&](h5::File& f) {
    f.write("/reconstructions", {static_cast<size_t>(m_N), size_t(m_C), size_t(m_R), size_t(m_R)}, hr.data(), 4);
    f.set_attr("/", "lap", int64_t(lap));
  });
  lap_file.commit();
  m_files.log(cat("lap ", lap, ": ", lap == 0 ? cat("start (", methods::name_of(m_dp.start), ")") : cat("M-step loss ", num(loss)),
                  std::isfinite(err.mse) ? cat(", reconstruction PSNR ", num(err.psnr, 4), " dB (MSE ",
                                               num(err.mse), ", missing pixels ", num(err.mse_missing), ")")
                                         : std::string(),
                  seconds > 0 ? cat(", ", num(seconds, 3), " s") : std::string()));
  m_files.stats(io::JsonLine()
                    .add("lap", lap)
                    .add("step", m_core.step())
                    .add("loss", loss, 6)
                    .add("mse", err.mse, 6)
                    .add("mse_missing", err.mse_missing, 6)
                    .add("psnr", err.psnr, 6)
                    .add("seconds", seconds, 6)
                    .str());
}

void Laps::write_reconstructions() const {
  const std::string& path = m_dp.reconstructions;
  if (!m_root) return;
  Kokkos::fence();
  const std::vector<float> hr = to_host(m_recon);
  const auto& ds = m_o.ds;
  data::Dataset out;
  out.name = ds.name + "-diffem";
  out.classes = ds.classes;
  out.class_names = ds.class_names;
  out.source = cat("DiffEM reconstructions after ", m_dp.laps, " laps of ", m_plan.data_path, " (",
                   m_tr.corruption, "), run ", m_plan.run_dir);
  out.train.name = "train";
  out.train.N = m_N, out.train.C = m_C, out.train.H = m_R, out.train.W = m_R;
  out.train.images.resize(hr.size());
  for (size_t i = 0; i < hr.size(); ++i)
    out.train.images[i] = static_cast<uint8_t>(std::lround(std::max(0.0, std::min(255.0, (hr[i] + 1.0) * 127.5))));
  out.train.labels = m_tr.labels;
  out.train.clean_labels = m_tr.clean_labels;
  out.train.candidates = m_tr.candidates;
  out.train.unlabeled = m_tr.unlabeled;
  out.test = ds.test;
  out.has_test = ds.has_test;
  data::write_dataset(path, out);
  m_files.log(cat("wrote ", path, "; training the final model on it"));
}

/// The final model's plan: the deck's, as vanilla on the reconstructions (all of them), for
/// diffem.final_kimg when set, in the same run directory, resumed where it was started before.
/// Its record (deck.yaml, the checkpoints' deck) is the deck that describes that run (made with
/// the plan), so that dmis sample and dmis classify read it like any other.
RunPlan final_plan(RunPlan p, const DiffemPlan& dp, bool root) {
  const bool started = !io::list_checkpoints(p.run_dir, "ckpt").empty();
  if (!started && root) {  // killed before the final model's first checkpoint: start it again
    std::error_code ec;
    fs::remove(fs::path(p.run_dir) / "deck.yaml", ec);
  }
  dist::barrier();
  p.method.kind = methods::MethodKind::Vanilla;
  p.data_path = dp.reconstructions;
  p.train_limit = 0;
  if (dp.final_kimg > 0) p.steps = static_cast<long>(std::ceil(dp.final_kimg * 1e3 / p.batch));
  p.resume.mode = started ? Resume::Mode::Latest : Resume::Mode::None;
  p.out_dir = fs::path(p.run_dir).parent_path().string();
  p.deck_text = dp.final_record[started ? 1 : 0];
  return p;
}

}  // namespace

DiffemPlan plan_diffem(const deck::Deck& d, int batch, uint64_t seed, const std::string& run_dir) {
  DiffemPlan dp;
  dp.laps = static_cast<int>(d.get_int("diffem.laps"));
  dp.lap_steps = std::max(1L, static_cast<long>(std::ceil(d.get_float("diffem.lap_kimg") * 1e3 / batch)));
  dp.start = methods::parse_choice<DiffemStart>(d.get_string("diffem.start"), "diffem.start");
  dp.start_key = d.ref("diffem.start");
  dp.ppca.rank = static_cast<int>(d.get_int("diffem.ppca_rank"));
  dp.ppca.iters = static_cast<int>(d.get_int("diffem.ppca_iters"));
  dp.ppca.sample = dp.start == DiffemStart::Ppca;
  dp.ppca.seed = seed ^ 0x99CAull;
  dp.sample_batch = static_cast<int>(d.get_int("diffem.sample_batch"));
  dp.sampler.steps = static_cast<int>(d.get_int("diffem.sample_steps"));
  dp.sampler.sigma_min = d.get_float("sample.sigma_min");
  dp.sampler.sigma_max = d.get_float("sample.sigma_max");
  dp.sampler.rho = d.get_float("sample.rho");
  dp.final_kimg = d.get_float("diffem.final_kimg");
  dp.reconstructions = (fs::path(run_dir) / "diffem" / "reconstructions.h5").string();
  for (const bool started : {false, true}) {
    deck::Deck record = d;
    record.set("method.name=vanilla");
    record.set("data.path=" + dp.reconstructions);
    record.set("data.train_limit=0");
    if (dp.final_kimg > 0) {
      record.set("train.steps=0");
      record.set(cat("train.kimg=", dp.final_kimg));
    }
    record.set(std::string("run.resume=") + (started ? "latest" : "none"));
    record.set("run.out_dir=" + fs::path(run_dir).parent_path().string());
    record.set("run.name=" + fs::path(run_dir).filename().string());
    dp.final_record[started ? 1 : 0] = record.resolved_yaml();
  }
  return dp;
}

RunPlan diffem_laps(const RunPlan& plan) {
  const DiffemPlan& dp = *plan.diffem;
  const bool root = dist::rank() == 0;
  const int ranks = dist::size();
  const std::string dir = (fs::path(plan.run_dir) / "diffem").string();
  RunFiles files(dir, root);
  const int done = laps_done(plan, dp, dir);
  dist::barrier();
  files.create();
  const Observations o = read_observations(plan, dp);
  if (root) {
    files.log(cat("DiffEM: ", dp.laps, " laps of ", dp.lap_steps, " steps (", dp.lap_steps * plan.batch / 1e3,
                  " kimg) of the posterior denoiser, then an E-step over ", o.ds.train.N, " observations (",
                  o.ds.train.corruption, ")", ranks > 1 ? cat(", over ", ranks, " ranks") : std::string()));
    files.log(cat("posterior denoiser ", o.post_net.describe()));
    if (o.clean.empty()) files.log("the dataset keeps no clean images: no reconstruction error is reported");
  }
  Laps laps(plan, dp, o, dir, files, root);
  if (done == 0 && !fs::exists(lap_path(dir, 0)))
    laps.start();
  else
    laps.resume(done);
  for (int lap = done + 1; lap <= dp.laps; ++lap) laps.run(lap);
  laps.write_reconstructions();
  dist::barrier();
  return final_plan(plan, dp, root);
}

}  // namespace dmis::train

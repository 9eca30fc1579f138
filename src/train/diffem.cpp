// `dmis train` with method.name: diffem (spec/method.md section 5; DiffEM, Rozet et al.).
//
// The run directory holds the EM laps under diffem/ and, at the end, the final model as a plain
// run (ckpt-*/ema-* in the run directory itself, trained by train_run() from the deck that
// diffem_laps returns, on the last reconstructions, so that dmis sample and dmis classify use it like any other run):
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
#include "kernels/tensor_ops.hpp"
#include "methods/edm_step.hpp"
#include "train/device_data.hpp"
#include "train/ppca.hpp"
#include "train/run_files.hpp"
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

template <class V>
std::vector<float> to_host_vec(const V& v) {
  auto h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), v);
  return std::vector<float>(h.data(), h.data() + h.span());
}
template <class V, class S>
void upload(const V& v, const std::vector<S>& src) {
  auto h = Kokkos::create_mirror_view(v);
  for (size_t i = 0; i < src.size(); ++i) h.data()[i] = src[i];
  Kokkos::deep_copy(v, h);
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

std::string num(double v, int prec = 4) {
  if (!std::isfinite(v)) return "null";
  std::ostringstream os;
  os << std::setprecision(prec) << v;
  return os.str();
}

}  // namespace

deck::Deck diffem_laps(const deck::Deck& d) {
  RunPlan plan = make_plan(d);
  const bool root = dist::rank() == 0;
  const int ranks = dist::size();
  const int local_batch = plan.batch / ranks;
  const std::string dir = (fs::path(plan.run_dir) / "diffem").string();
  const int laps = static_cast<int>(d.get_int("diffem.laps"));

  // ---- resume: the last complete lap ---------------------------------------------------------
  RunFiles files(dir, root);
  int done_laps = 0;
  if (plan.resume == "none") {
    if (fs::exists(lap_path(dir, 0)) || RunFiles(plan.run_dir, false).holds_run())
      d.fail("run.resume", cat("the run directory '", plan.run_dir, "' already holds a run; set "
                               "run.resume: latest to continue it, or choose another run.name"));
  } else if (plan.resume == "latest") {
    if (!fs::exists(lap_path(dir, 0)))
      d.fail("run.resume", cat("'latest', but '", dir, "' holds no complete DiffEM lap"));
    while (done_laps < laps && fs::exists(lap_path(dir, done_laps + 1))) ++done_laps;
  } else {
    d.fail("run.resume", "diffem resumes from its laps: use none or latest");
  }
  dist::barrier();
  files.create();

  // ---- the observations ----------------------------------------------------------------------
  const data::Dataset ds = data::read_dataset(plan.data_path, /*with_test=*/true, plan.train_limit);
  const auto& tr = ds.train;
  if (!tr.corrupted())
    d.fail("method.name", cat("diffem learns from corrupted images, but the training split of '",
                              plan.data_path, "' holds clean images (make one with dmis import "
                              "--corrupt SPEC)"));
  if (tr.corruption == "unknown")
    d.fail("method.name", cat("diffem corrupts its reconstructions afresh through the dataset's "
                              "channel, but '", plan.data_path, "' does not record it (attribute "
                              "/train corruption)"));
  const data::Corruption channel = data::parse_corruption(tr.corruption);
  const std::string start_kind = d.get_string("diffem.start");
  const bool ppca = start_kind == "ppca" || start_kind == "ppca_mean";
  if (ppca && (channel.kind == data::Corruption::Kind::Blur || channel.noise > 0))
    d.fail("diffem.start", cat("the ppca start integrates out missing pixels of noise-free "
                               "observations; the data's channel is ", channel.spec(),
                               " (use mean or observation)"));
  models::UNetConfig final_net = network_from_deck(d, ds.classes);
  const std::string bad = data::image_shape_mismatch(tr, plan.data_path, final_net.out_channels,
                                                     final_net.resolution);
  if (!bad.empty()) d.fail("network.preset", bad);
  models::UNetConfig post_net = final_net;
  const int C = tr.C, R = tr.H, HW = R * R, N = tr.N, K = ds.classes, Cc = C + 1;
  post_net.in_channels = C + Cc;  // [x, y, mask]
  const size_t n_img = static_cast<size_t>(C) * HW;
  std::vector<uint8_t> clean;
  try {
    clean = data::read_clean_images(plan.data_path, plan.train_limit);
  } catch (const InputError&) {
    clean.clear();  // no ground truth kept: no reconstruction error
  }

  const long lap_steps =
      std::max(1L, static_cast<long>(std::ceil(d.get_float("diffem.lap_kimg") * 1e3 / plan.batch)));
  if (root) {
    files.log(cat("DiffEM: ", laps, " laps of ", lap_steps, " steps (", lap_steps * plan.batch / 1e3,
                  " kimg) of the posterior denoiser, then an E-step over ", N, " observations (",
                  tr.corruption, ")", ranks > 1 ? cat(", over ", ranks, " ranks") : std::string()));
    files.log(cat("posterior denoiser ", post_net.describe()));
    if (clean.empty())
      files.log("the dataset keeps no clean images: no reconstruction error is reported");
  }

  // ---- device state ---------------------------------------------------------------------------
  Exec exec;
  DView<float*> y("dmis::diffem::observations", N * n_img), recon("dmis::diffem::recon", N * n_img);
  DView<float*> masks("dmis::diffem::masks", static_cast<size_t>(N) * HW);
  DView<int*> labels("dmis::diffem::labels", N);
  upload(y, tr.observations);
  upload(masks, tr.masks);
  {
    std::vector<int> lab(tr.labels.begin(), tr.labels.end());
    for (auto& l : lab)
      if (l < 0) l = K;  // no label: the "no label" token
    upload(labels, lab);
  }
  methods::TrainStepConfig tc = plan.step;
  methods::EdmTrainStep<Exec> core(post_net, tc, local_batch, plan.conv_scratch_mb);
  auto& store = core.store();
  dist::DeviceReducer<Exec> reducer(std::max(store.grads.extent(0), N * n_img));
  if (ranks > 1)
    core.on_gradients = [&reducer](const Exec& e, const Tensor1<float, Exec>& g) { reducer.sum(e, g); };

  auto save_lap = [&](int lap, double loss, double seconds) {
    Kokkos::fence();
    const std::vector<float> hr = to_host_vec(recon);
    const ReconError err = recon_error(hr, clean, tr.masks, C, HW);
    if (!root) return;
    io::CheckpointData ck;
    ck.kind = "training-state";
    ck.step = core.step();
    ck.images_seen = core.images_seen();
    ck.seed = plan.seed;
    ck.deck = d.resolved_yaml();
    ck.preset = post_net.preset;
    ck.table = core.net().table();
    ck.params = to_host_vec(store.params);
    ck.adam_m = to_host_vec(store.adam_m);
    ck.adam_v = to_host_vec(store.adam_v);
    ck.ema = to_host_vec(store.ema);
    // the state first (into lap-NN.h5.part), then the reconstructions beside it (written
    // atomically to lap-NN.h5.recon); the lap counts as complete only when lap-NN.h5 exists,
    // which is renamed last. A failure on the way leaves no .part behind.
    io::AtomicFile lap_file(lap_path(dir, lap), ".part");
    io::write_checkpoint(lap_file.tmp(), ck);
    h5::write_atomic(lap_file.path() + ".recon", [&](h5::File& f) {
      f.write("/reconstructions", {static_cast<size_t>(N), size_t(C), size_t(R), size_t(R)}, hr.data(), 4);
      f.set_attr("/", "lap", int64_t(lap));
    });
    lap_file.commit();
    files.log(cat("lap ", lap, ": ", lap == 0 ? "start (" + d.get_string("diffem.start") + ")"
                                                 : cat("M-step loss ", num(loss)),
                  std::isfinite(err.mse) ? cat(", reconstruction PSNR ", num(err.psnr, 4), " dB (MSE ",
                                               num(err.mse), ", missing pixels ", num(err.mse_missing), ")")
                                         : std::string(),
                  seconds > 0 ? cat(", ", num(seconds, 3), " s") : std::string()));
    files.stats(cat("{\"lap\": ", lap, ", \"step\": ", core.step(), ", \"loss\": ", num(loss, 6),
                    ", \"mse\": ", num(err.mse, 6), ", \"mse_missing\": ", num(err.mse_missing, 6),
                    ", \"psnr\": ", num(err.psnr, 6), ", \"seconds\": ", num(seconds, 6), "}"));
  };

  if (done_laps == 0 && !fs::exists(lap_path(dir, 0))) {
    // ---- lap 0: the start --------------------------------------------------------------------
    core.initialize(plan.init);
    if (ppca) {
      PpcaConfig pc;
      pc.rank = static_cast<int>(d.get_int("diffem.ppca_rank"));
      pc.iters = static_cast<int>(d.get_int("diffem.ppca_iters"));
      pc.sample = start_kind == "ppca";
      pc.seed = plan.seed ^ 0x99CAull;
      const auto t0 = std::chrono::steady_clock::now();
      const PpcaResult fit = ppca_start(y, masks, N, C, HW, pc, recon, [&](int it, double v) {
        if (root && (it % 5 == 0 || it == pc.iters))
          std::cout << "lap 0: PPCA EM iteration " << it << "/" << pc.iters << " | noise variance "
                    << num(v, 4) << std::endl;
      });
      if (root)
        files.log(cat("lap 0: PPCA prior of rank ", pc.rank, " after ", pc.iters, " EM iterations: ",
                      "noise variance ", num(fit.v, 4), ", ", num(100 * fit.explained, 3),
                      " % of the observed values' variance explained; ",
                      pc.sample ? "a posterior draw" : "the posterior mean", " per observation (",
                      num(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 3),
                      " s)"));
    } else {
      std::vector<float> start(tr.observations);
      if (start_kind == "mean") {
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
                start[i * n_img + c * HW + p] = cnt[p] > 0 ? static_cast<float>(sum[c * HW + p] / cnt[p]) : 0.f;
      }
      upload(recon, start);
    }
    save_lap(0, NAN, 0);
  } else {
    // ---- resume after lap done_laps ----------------------------------------------------------
    const std::string path = lap_path(dir, done_laps);
    const io::CheckpointData ck = io::read_checkpoint(path, &core.net().table());
    upload(store.params, ck.params);
    upload(store.adam_m, ck.adam_m);
    upload(store.adam_v, ck.adam_v);
    upload(store.ema, ck.ema);
    core.set_step(ck.step);
    h5::File f(path + ".recon", h5::File::Mode::Read);
    const auto r = f.read_float("/reconstructions");
    if (r.data.size() != N * n_img)
      throw InputError(cat("'", path, ".recon' holds ", r.data.size(), " values, expected ", N * n_img,
                           " (the reconstructions of ", N, " images)"));
    upload(recon, r.data);
    if (root) files.log(cat("resumed after lap ", done_laps, " (step ", ck.step, ")"));
  }

  // ---- laps ---------------------------------------------------------------------------------------
  const data::CorruptionKernel ck_channel(channel, R, R, tr.corruption_seed ^ plan.seed);
  DView<float****> x0("dmis::diffem::x0", local_batch, C, R, R), obs("dmis::diffem::obs", local_batch, C, R, R),
      mk("dmis::diffem::mask", local_batch, 1, R, R), cond("dmis::diffem::cond", local_batch, Cc, R, R);
  DView<int*> idx("dmis::diffem::index", local_batch), lab_b("dmis::diffem::labels_b", local_batch),
      lab_d("dmis::diffem::labels_dropped", local_batch);
  DView<float*> loss_acc("dmis::diffem::loss_sum", 1);
  auto loss_host = Kokkos::create_mirror_view(loss_acc);
  // E-step state
  const int Bs = static_cast<int>(d.get_int("diffem.sample_batch"));
  diffusion::SamplerConfig sc;
  sc.steps = static_cast<int>(d.get_int("diffem.sample_steps"));
  sc.sigma_min = d.get_float("sample.sigma_min");
  sc.sigma_max = d.get_float("sample.sigma_max");
  sc.rho = d.get_float("sample.rho");
  models::UNet<Exec, float> snet(post_net);
  snet.prepare(Bs, 0, /*inference_only=*/true);
  DView<float****> scond("dmis::diffem::sample_cond", Bs, Cc, R, R), sout("dmis::diffem::sample_out", Bs, C, R, R);
  DView<int*> slab("dmis::diffem::sample_labels", Bs);
  diffusion::HeunSampler<Exec> sampler(Bs, C, R, R);
  auto denoiser = diffusion::conditional_denoiser<Exec>(snet, store.ema, plan.step.edm, scond);
  const uint32_t N32 = static_cast<uint32_t>(N);
  const uint64_t data_seed = plan.seed ^ 0xD1FFE3ull;
  const rng::SampleIds ids = plan.step.ids();

  for (int lap = done_laps + 1; lap <= laps; ++lap) {
    const auto t0 = std::chrono::steady_clock::now();
    // M-step: the posterior denoiser on (reconstruction, fresh corruption) pairs
    Kokkos::deep_copy(loss_acc, 0.0f);
    auto t_log = t0;
    double lap_loss = NAN;  // the mean loss of the lap's last progress window
    for (long s = 0; s < lap_steps; ++s) {
      const long g = core.step();  // continues over the laps: draws never repeat
      const uint64_t first = static_cast<uint64_t>(g) * plan.batch;
      Kokkos::parallel_for(
          "dmis::diffem::gather", Kokkos::RangePolicy<Exec>(exec, 0, local_batch), KOKKOS_LAMBDA(int b) {
            const uint32_t i = DeviceData<Exec>::index_at(first + ids(b), N32, data_seed);
            idx(b) = static_cast<int>(i);
            lab_b(b) = labels(i);
          });
      // the images as one flat copy (coalesced on a GPU), after the indices
      Kokkos::parallel_for(
          "dmis::diffem::gather_images",
          Kokkos::RangePolicy<Exec>(exec, 0, static_cast<size_t>(local_batch) * n_img),
          KOKKOS_LAMBDA(size_t r) {
            const size_t b = r / n_img, e = r % n_img;
            x0.data()[r] = recon(static_cast<size_t>(idx(b)) * n_img + e);
          });
      data::corrupt<Exec>(exec, ck_channel, static_cast<uint32_t>(lap), idx, x0, obs, mk);
      kernels::Concat<Exec, float>::forward(exec, obs, mk, cond);
      core.begin(exec);
      core.drop_labels(exec, lab_b, lab_d);
      core.sample_inputs(exec, x0, Tensor4<const float, Exec>(), cond);
      core.generative_loss(exec, x0, lab_d, Tensor1<const float, Exec>(), Tensor4<const float, Exec>());
      core.finish(exec);
      auto l = core.loss();
      Kokkos::parallel_for(
          "dmis::diffem::loss_sum", Kokkos::RangePolicy<Exec>(exec, 0, 1),
          KOKKOS_LAMBDA(int) { loss_acc(0) += l(0); });
      const long done = s + 1;
      if (done % plan.log_every == 0 || done == lap_steps) {
        Kokkos::fence();
        const auto now = std::chrono::steady_clock::now();
        const double dt = std::chrono::duration<double>(now - t_log).count();
        t_log = now;
        double lh = 0;
        {
          Kokkos::deep_copy(loss_host, loss_acc);
          lh = loss_host(0);
          dist::allreduce_sum(&lh, 1);
          lh /= ranks;
        }
        const long since = done % plan.log_every == 0 ? plan.log_every : done % plan.log_every;
        lap_loss = lh / since;
        if (root)
          files.log(cat("lap ", lap, "/", laps, " M-step ", done, "/", lap_steps, " | loss ",
                        num(lh / since), " | ", num(since * plan.batch / dt, 4), " img/s | ETA M-step ",
                        num(dt / since * (lap_steps - done), 3), " s"));
        if (!std::isfinite(lh))
          throw Error(cat("DiffEM lap ", lap, " step ", done, ": the loss is not a number; lower "
                          "train.lr, then resume (run.resume: latest restarts this lap)"));
        Kokkos::deep_copy(loss_acc, 0.0f);
      }
    }
    // E-step: a posterior sample for every observation; rank r takes [lo, hi)
    const auto shard = dist::share(N);
    const long lo = static_cast<long>(shard.first), hi = static_cast<long>(shard.second);
    sc.seed = plan.seed * 1000003ull + static_cast<uint64_t>(lap);
    Kokkos::parallel_for(
        "dmis::diffem::clear_others", Kokkos::RangePolicy<Exec>(exec, 0, recon.extent(0)),
        KOKKOS_LAMBDA(size_t e) {
          const size_t i = e / n_img;
          if (ranks > 1 && (i < static_cast<size_t>(lo) || i >= static_cast<size_t>(hi))) recon(e) = 0.f;
        });
    auto te = std::chrono::steady_clock::now();
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
      sampler.run(exec, sc, denoiser, slab, K, static_cast<uint32_t>(first), sout);
      Kokkos::parallel_for(
          "dmis::diffem::estep_store", Kokkos::RangePolicy<Exec>(exec, 0, static_cast<size_t>(nb) * n_img),
          KOKKOS_LAMBDA(size_t e) {
            const float v = sout.data()[e];
            recon(static_cast<size_t>(first) * n_img + e) = v < -1.f ? -1.f : (v > 1.f ? 1.f : v);
          });
      if (root && ((first - lo) / Bs) % 10 == 9) {
        Kokkos::fence();
        const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - te).count();
        const double done_imgs = static_cast<double>(first + nb - lo);
        files.log(cat("lap ", lap, "/", laps, " E-step ", first + nb - lo, "/", hi - lo, " images",
                      ranks > 1 ? " of rank 0" : "", " | ", num(done_imgs / dt, 4), " img/s | ETA ",
                      num(dt / done_imgs * (hi - first - nb), 3), " s"));
      }
    }
    if (ranks > 1) reducer.sum(exec, Tensor1<float, Exec>(recon.data(), recon.extent(0)));
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    save_lap(lap, lap_loss, secs);
  }

  // ---- the final model on the last reconstructions -----------------------------------------------
  const std::string rec_path = (fs::path(dir) / "reconstructions.h5").string();
  if (root) {
    Kokkos::fence();
    const std::vector<float> hr = to_host_vec(recon);
    data::Dataset out;
    out.name = ds.name + "-diffem";
    out.classes = ds.classes;
    out.class_names = ds.class_names;
    out.source = cat("DiffEM reconstructions after ", laps, " laps of ", plan.data_path, " (", tr.corruption,
                     "), run ", plan.run_dir);
    out.train.name = "train";
    out.train.N = N, out.train.C = C, out.train.H = R, out.train.W = R;
    out.train.images.resize(hr.size());
    for (size_t i = 0; i < hr.size(); ++i)
      out.train.images[i] = static_cast<uint8_t>(std::lround(std::max(0.0, std::min(255.0, (hr[i] + 1.0) * 127.5))));
    out.train.labels = tr.labels;
    out.train.clean_labels = tr.clean_labels;
    out.train.candidates = tr.candidates;
    out.train.unlabeled = tr.unlabeled;
    out.test = ds.test;
    out.has_test = ds.has_test;
    data::write_dataset(rec_path, out);
    files.log(cat("wrote ", rec_path, "; training the final model on it"));
  }
  dist::barrier();
  deck::Deck final_deck = d;
  final_deck.set("method.name=vanilla");
  final_deck.set("data.path=" + rec_path);
  final_deck.set("data.train_limit=0");
  const double final_kimg = d.get_float("diffem.final_kimg");
  if (final_kimg > 0) {
    final_deck.set("train.steps=0");
    final_deck.set(cat("train.kimg=", final_kimg));
  }
  const bool final_started = !io::list_checkpoints(plan.run_dir, "ckpt").empty();
  if (!final_started && root) {  // killed before the final model's first checkpoint: start it again
    std::error_code ec;
    fs::remove(fs::path(plan.run_dir) / "deck.yaml", ec);
  }
  dist::barrier();
  final_deck.set(std::string("run.resume=") + (final_started ? "latest" : "none"));
  final_deck.set("run.out_dir=" + fs::path(plan.run_dir).parent_path().string());
  final_deck.set("run.name=" + fs::path(plan.run_dir).filename().string());
  return final_deck;
}

}  // namespace dmis::train

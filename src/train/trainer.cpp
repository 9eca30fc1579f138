#include "train/trainer.hpp"

#include <Kokkos_Core.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <optional>
#include <sstream>

#include "core/error.hpp"
#include "core/version.hpp"
#include "data/dataset.hpp"
#include "dist/comm.hpp"
#include "dist/reduce.hpp"
#include "io/checkpoint.hpp"
#include "kernels/conv2d.hpp"
#include "train/checkpointer.hpp"
#include "train/device_data.hpp"
#include "train/progress_log.hpp"
#include "train/run_files.hpp"

namespace dmis::train {

namespace fs = std::filesystem;
using Exec = Kokkos::DefaultExecutionSpace;

std::string run_directory(const deck::Deck& d) {
  std::string name = d.get_string("run.name");
  if (name.empty()) name = fs::path(d.file()).stem().string();
  return (fs::path(d.get_string("run.out_dir")) / name).string();
}

models::UNetConfig network_from_deck(const deck::Deck& d, int classes) {
  models::UNetConfig c = models::UNetConfig::from_preset(d.get_string("network.preset"));
  if (d.get_int("network.base") > 0) c.base = static_cast<int>(d.get_int("network.base"));
  if (d.given("network.mults")) {
    c.mults.clear();
    for (long m : d.get_ints("network.mults")) c.mults.push_back(static_cast<int>(m));
    if (c.mults.empty()) d.fail("network.mults", "expected at least one level, found []");
  }
  if (d.get_int("network.n_blocks") > 0) c.n_blocks = static_cast<int>(d.get_int("network.n_blocks"));
  if (d.given("network.attn_res")) {
    c.attn_res.clear();
    for (long r : d.get_ints("network.attn_res")) c.attn_res.push_back(static_cast<int>(r));
  }
  if (d.get_int("network.groups") > 0) c.groups = static_cast<int>(d.get_int("network.groups"));
  c.dropout = static_cast<float>(d.get_float("network.dropout"));
  c.classes = classes;
  const std::string method = d.get_string("method.name");
  if (method == "ambient" || (method == "dmis" && d.get_bool("method.ambient")))
    c.in_channels = c.out_channels + 1;  // the mask channel
  try {
    c.validate();
    models::unet_param_table(c);  // checks the GroupNorm divisibility of every layer
  } catch (const InputError& e) {
    d.fail("network.preset", e.what());
  }
  return c;
}

RunPlan make_plan(const deck::Deck& d) {
  RunPlan p;
  p.deck_file = d.file();
  p.out_dir = d.get_string("run.out_dir");
  p.run_dir = run_directory(d);
  p.name = fs::path(p.run_dir).filename().string();
  p.resume = d.get_string("run.resume");
  p.seed = static_cast<uint64_t>(d.get_int("run.seed"));
  p.log_every = d.get_int("run.log_every");
  p.checkpoint_every = d.get_int("run.checkpoint_every");
  p.keep = d.get_int("run.keep_checkpoints");
  p.data_path = d.get_string("data.path");
  p.train_limit = static_cast<size_t>(d.get_int("data.train_limit"));
  p.test_limit = static_cast<size_t>(d.get_int("data.test_limit"));

  // one kind for the data (what to generate) and the method (its likelihood p(z | y))
  p.supervision.kind = methods::parse_choice<data::SupervisionKind>(d.get_string("supervision.kind"),
                                                                     "supervision.kind");
  p.supervision.noise = d.get_string("supervision.noise");
  p.supervision.rate = d.get_float("supervision.rate");
  p.supervision.partial = d.get_string("supervision.partial");
  p.supervision.q = d.get_float("supervision.q");
  p.supervision.labeled_fraction = d.get_float("supervision.labeled_fraction");
  const long sseed = d.get_int("supervision.seed");
  p.supervision.seed = sseed >= 0 ? static_cast<uint64_t>(sseed) : p.seed;
  p.supervision_source = d.get_string("supervision.source");

  p.batch = static_cast<int>(d.get_int("train.batch"));
  const long steps = d.get_int("train.steps");
  const double kimg = d.get_float("train.kimg");
  if (steps > 0 && kimg > 0)
    d.fail("train.steps", cat("set train.steps or train.kimg, not both (train.kimg at ",
                              d.where("train.kimg"), ")"));
  if (steps == 0 && kimg == 0)
    d.fail("train.steps", "set the training length: train.steps or train.kimg (both are 0)");
  p.steps = steps > 0 ? steps : static_cast<long>(std::ceil(kimg * 1e3 / p.batch));
  const int ranks = dist::size();
  if (p.batch % ranks != 0)
    d.fail("train.batch", cat("the global batch (", p.batch, ") must divide evenly over the ",
                              ranks, " ranks"));

  p.init = d.get_string("network.init") == "torch" ? models::InitScheme::Torch : models::InitScheme::Adm;
  p.step.edm.P_mean = d.get_float("diffusion.P_mean");
  p.step.edm.P_std = d.get_float("diffusion.P_std");
  p.step.edm.sigma_data = d.get_float("diffusion.sigma_data");
  p.step.p_uncond = d.get_float("diffusion.p_uncond");
  p.step.opt.lr = d.get_float("train.lr");
  p.step.opt.beta1 = d.get_float("train.beta1");
  p.step.opt.beta2 = d.get_float("train.beta2");
  p.step.opt.eps = d.get_float("train.eps");
  p.step.opt.weight_decay = d.get_float("train.weight_decay");
  p.step.opt.grad_clip = d.get_float("train.grad_clip");
  p.step.ema_decay = d.get_float("train.ema_decay");
  p.step.ema_halflife_kimg = d.get_float("train.ema_halflife_kimg");
  p.step.ema_rampup_ratio = d.get_float("train.ema_rampup_ratio");
  p.step.lr_rampup_kimg = d.get_float("train.lr_rampup_kimg");
  p.step.seed = p.seed;
  p.step.global_batch = p.batch;
  p.step.sample_offset = dist::rank();  // shards are interleaved: see rng::SampleIds
  p.step.sample_stride = ranks;
  p.conv_scratch_mb = d.get_float("train.conv_scratch_mb");

  using methods::parse_choice;
  p.method.kind = parse_choice<methods::MethodKind>(d.get_string("method.name"), "method.name");
  p.method.delta = d.get_float("method.delta");
  p.method.ambient = d.get_bool("method.ambient");
  p.step.hidden_unit_weight = d.get_string("method.hidden_weight") == "unit";
  if (p.method.ambient && p.method.kind != methods::MethodKind::Dmis)
    d.fail("method.ambient", cat("true goes with method.name dmis, found '", methods::name_of(p.method.kind),
                                 "' (method.name ambient is Ambient Diffusion on the observed labels)"));
  p.method.supervision = p.supervision.kind;
  p.method.beta = d.get_float("method.beta");
  p.method.warmup_kimg = d.get_float("method.warmup_kimg");
  p.method.rampup_kimg = d.get_float("method.rampup_kimg");
  p.method.cls_push = parse_choice<methods::ClsPush>(d.get_string("method.cls_push"), "method.cls_push");
  p.method.timesteps = static_cast<int>(d.get_int("method.timesteps"));
  p.method.window = d.get_float("method.window");
  p.method.classifier_sigma = d.get_float("method.classifier_sigma");
  p.method.classifier_sigma_max = d.get_float("method.classifier_sigma_max");
  if (p.method.classifier_sigma_max > 0 &&
      !(p.method.classifier_sigma > 0 && p.method.classifier_sigma_max > p.method.classifier_sigma))
    d.fail("method.classifier_sigma_max",
           cat("a range of the classifier's levels needs method.classifier_sigma > 0 below it; "
               "found classifier_sigma ", p.method.classifier_sigma, " and classifier_sigma_max ",
               p.method.classifier_sigma_max));
  p.method.cls_sigma = d.get_float("method.cls_sigma");
  p.method.classifier_fraction = d.get_float("method.classifier_fraction");
  p.method.top_k = static_cast<int>(d.get_int("method.top_k"));
  p.method.tau = d.get_float("method.tau");
  p.method.gen_extra = static_cast<int>(d.get_int("method.gen_extra"));
  p.method.relabel_confidence = d.get_float("method.relabel_confidence");
  p.method.logit_scale = d.get_float("method.logit_scale");
  p.method.prior = parse_choice<methods::PriorMode>(d.get_string("method.prior"), "method.prior");
  p.method.prior_momentum = d.get_float("method.prior_momentum");
  p.method.noisy_target =
      parse_choice<methods::NoisyTarget>(d.get_string("method.noisy_target"), "method.noisy_target");
  p.method.elr_clamp = d.get_float("method.elr_clamp");
  p.method.posterior_fraction = d.get_float("method.posterior_fraction");
  p.method.gen_objective =
      parse_choice<methods::GenObjective>(d.get_string("method.gen_objective"), "method.gen_objective");
  p.method.transition_momentum = d.get_float("method.transition_momentum");
  p.method.transition_prior = d.get_float("method.transition_prior");
  p.method.calibrate_scale = d.get_bool("method.calibrate_scale");
  p.method.transition_init = d.get_float("method.transition_init");
  p.method.transition =
      parse_choice<methods::TransitionMode>(d.get_string("method.transition"), "method.transition");
  p.method.scale_momentum = d.get_float("method.scale_momentum");
  const bool is_dmis = p.method.kind == methods::MethodKind::Dmis;
  if (is_dmis) {
    const int bc = methods::classifier_samples(p.method.classifier_fraction, p.batch);
    if (bc % ranks != 0)
      d.fail("method.classifier_fraction",
             cat("gives ", bc, " classifier samples per step (of train.batch ", p.batch,
                 "), which do not divide evenly over the ", ranks, " ranks"));
    const int bw = methods::classifier_samples(p.method.posterior_fraction, p.batch);
    if (bw % ranks != 0)
      d.fail("method.posterior_fraction",
             cat("gives ", bw, " samples with posteriors per step (of train.batch ", p.batch,
                 "), which do not divide evenly over the ", ranks, " ranks"));
    if (bw < bc)
      d.fail("method.posterior_fraction",
             cat(p.method.posterior_fraction, " is below method.classifier_fraction ",
                 p.method.classifier_fraction, ": the classifier's samples need posteriors"));
  }
  if (p.method.prior == methods::PriorMode::Estimate &&
      p.method.supervision != methods::dmis_ops::Supervision::Partial && is_dmis)
    d.fail("method.prior", cat("'estimate' updates the prior from candidate sets (partial labels); "
                               "supervision.kind is '", data::kind_name(p.supervision.kind), "'"));
  return p;
}


namespace {

/// Whether step s (0-based, global batch B over a training set of N) is the last of an epoch.
bool epoch_ends(long s, int B, size_t N) {
  const uint64_t n = N, done = static_cast<uint64_t>(s) + 1;
  return (done * B) / n != (static_cast<uint64_t>(s) * B) / n;
}

/// The method's end of an epoch (the class prior's update) with the epoch's prior counts summed
/// over the ranks first (rank 0 carries the sum).
void end_epoch(methods::MethodStep<Exec>& method, int ranks, bool root) {
  if (ranks > 1) {
    auto counts = method.prior_counts();
    auto hc = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), counts);
    dist::allreduce_sum(hc.data(), hc.extent(0));
    if (!root) Kokkos::deep_copy(hc, 0);
    Kokkos::deep_copy(counts, hc);
  }
  method.end_epoch(Exec());
}

}  // namespace

int train(const deck::Deck& d) {
  if (d.get_string("method.name") == "diffem") return train_run(diffem_laps(d));
  return train_run(d);
}

int train_run(const deck::Deck& d) {
  RunPlan plan = make_plan(d);
  if (plan.method.kind == methods::MethodKind::Diffem)
    d.fail("method.name", "diffem is a pipeline of runs: train it with train(), not train_run()");
  const bool root = dist::rank() == 0;
  const int ranks = dist::size();
  const int local_batch = plan.batch / ranks;

  // ---- run directory -----------------------------------------------------------------------
  RunFiles files(plan.run_dir, root);
  ResumePoint at = resume_point(files, plan.resume, d);
  const std::string& resume_from = at.from;
  dist::barrier();  // every rank has looked at the directory before rank 0 writes into it
  files.create();  // checks that the directory is writable before any work starts
  if (root)
    for (const auto& line : at.notes) files.log(line);
  if (root && at.restarted) files.truncate_stats_after(0);  // the records of the run that stopped

  // ---- data and supervision ----------------------------------------------------------------
  const data::Dataset ds = data::read_dataset(plan.data_path, /*with_test=*/false, plan.train_limit);
  const auto& tr = ds.train;
  {
    // the images against the preset's first: a network for other images is the cause of any
    // later complaint about its levels (attn_res)
    const auto pre = models::UNetConfig::from_preset(d.get_string("network.preset"));
    const std::string bad = data::image_shape_mismatch(tr, plan.data_path, pre.out_channels,
                                                       pre.resolution, cat("the network '", pre.preset, "'"));
    if (!bad.empty())
      d.fail("network.preset", cat(bad, " (unet-s/unet-m: 1x28x28, ddpmpp-cifar: 3x32x32)"));
  }
  plan.net = network_from_deck(d, ds.classes);
  data::Supervision sup;
  const std::string sup_file = (fs::path(plan.run_dir) / "supervision.h5").string();
  if (!resume_from.empty() && fs::exists(sup_file)) {
    sup = data::read_supervision(sup_file);
    if (sup.N != tr.N)
      throw InputError(cat("'", sup_file, "' holds supervision for ", sup.N,
                           " images; the training set has ", tr.N));
  } else if (plan.supervision_source == "dataset") {
    sup = data::supervision_from_split(tr, ds.classes, plan.supervision.kind);
  } else {
    // generated from the clean labels (the ground truth when the file carries one)
    plan.supervision.dataset_name = ds.name;
    sup = data::generate_supervision(tr.clean_labels.empty() ? tr.labels : tr.clean_labels,
                                     ds.classes, plan.supervision);
  }
  if (root && resume_from.empty()) data::write_supervision(sup_file, sup);

  const std::string deck_text = d.resolved_yaml();
  if (root) {
    files.write_text("deck.yaml", deck_text);
    files.log(banner());
    files.log(cat("run directory ", plan.run_dir, " (", ranks, " rank", ranks > 1 ? "s" : "",
                  ", batch ", plan.batch, ")"));
    files.log(cat("network ", plan.net.describe(), "; 3x3 stride-1 convolutions by ",
                  kernels::conv_algorithm_name(kernels::conv_algorithm())));
    files.log(cat("data ", plan.data_path, ": ", tr.N, " training images of ", tr.C, "x", tr.H,
                  "x", tr.W, ", ", ds.classes, " classes",
                  tr.corrupted() ? cat("; corrupted: ", tr.corruption, " (seed ",
                                       tr.corruption_seed, "), observations and masks only")
                                 : std::string()));
    files.log(cat("supervision ", data::summary(sup)));
  }

  const DeviceData<Exec> dev =
      tr.corrupted() ? DeviceData<Exec>(tr.N, tr.C, tr.H, tr.W, ds.classes, tr.observations,
                                        tr.masks, sup.observed, sup.candidates, sup.labeled)
                     : DeviceData<Exec>(tr.N, tr.C, tr.H, tr.W, ds.classes, tr.images,
                                        sup.observed, sup.candidates, sup.labeled);
  const bool is_dmis = plan.method.kind == methods::MethodKind::Dmis;
  if (is_dmis && plan.method.supervision == methods::dmis_ops::Supervision::Noisy &&
      plan.method.transition == methods::TransitionMode::Known) {
    try {
      plan.method.known_transition = data::noise_transition(sup);
    } catch (const InputError& e) {
      d.fail("method.transition", cat("'known': ", e.what()));
    }
  }
  methods::MethodStep<Exec> method(plan.net, plan.step, plan.method, local_batch,
                                   plan.conv_scratch_mb);
  auto& core = method.core();
  auto& store = core.store();
  // data parallelism: one sum of the flat gradient buffer over the ranks per step
  dist::DeviceReducer<Exec> reducer(store.grads.extent(0));
  if (ranks > 1) core.on_gradients = [&reducer](const Exec& e, const Tensor1<float, Exec>& g) {
    reducer.sum(e, g);
  };
  // noisy labels: the transition counts of a step summed over the ranks (every rank then
  // holds the same estimate, as with one rank)
  dist::DeviceReducer<Exec> count_reducer(is_dmis ? method.step_sums_size() : 1);
  if (ranks > 1 && is_dmis)
    method.on_step_sums = [&count_reducer](const Exec& e, const Tensor1<float, Exec>& c) {
      count_reducer.sum(e, c);
    };
  // the clean labels, for the diagnostics of the DMIS posterior (never used for training)
  const std::vector<int32_t>& audit_host =
      plan.supervision_source == "dataset" ? tr.clean_labels
                                           : (tr.clean_labels.empty() ? tr.labels : tr.clean_labels);
  Kokkos::View<int*, Kokkos::LayoutRight, Exec::memory_space> audit(
      "dmis::train::audit_labels", is_dmis ? audit_host.size() : 0);
  if (audit.extent(0) > 0) {
    auto h = Kokkos::create_mirror_view(audit);
    for (size_t i = 0; i < audit_host.size(); ++i) h(i) = audit_host[i];
    Kokkos::deep_copy(audit, h);
    method.set_audit_labels(audit);
  }
  if (root) {
    std::string detail;
    if (is_dmis)
      detail = cat("K ", plan.method.timesteps,
                   plan.method.classifier_sigma_max > 0
                       ? cat(" evenly at sigma ", plan.method.classifier_sigma, "-", plan.method.classifier_sigma_max)
                   : plan.method.classifier_sigma > 0 ? cat(" at sigma ", plan.method.classifier_sigma)
                                                    : std::string(" in the DMIS window"),
                   plan.method.cls_sigma > 0 ? cat(" (the classification term at sigma ", plan.method.cls_sigma, ")")
                                             : std::string(),
                   ", logit scale ", method.initial_logit_scale(),
                   plan.method.calibrate_scale ? " (calibrated)" : "",
                   ", posterior fraction ", plan.method.posterior_fraction,
                   ", classifier fraction ", plan.method.classifier_fraction, ", top-k ",
                   plan.method.top_k, ", warm-up ", plan.method.warmup_kimg, " kimg, ramp-in ", plan.method.rampup_kimg, " kimg, beta ",
                   plan.method.beta, ", generative term ", methods::name_of(plan.method.gen_objective),
                   plan.method.gen_objective == methods::GenObjective::Mixture
                       ? cat(" (tau ", plan.method.tau, ", extra classes ", plan.method.gen_extra, ")")
                       : std::string(),
                   plan.method.relabel_confidence > 0
                       ? cat(", the posterior's class where q >= ", plan.method.relabel_confidence,
                             " (else the vanilla label)")
                       : std::string(),
                   plan.method.supervision == methods::dmis_ops::Supervision::Noisy
                       ? cat(", noisy-label target ", methods::name_of(plan.method.noisy_target),
                             plan.method.noisy_target == methods::NoisyTarget::Elr ? cat(" (clamp ", plan.method.elr_clamp, ")")
                                                               : std::string(),
                             plan.method.transition == methods::TransitionMode::Known
                                 ? cat(", transition known (", sup.config.noise, " noise at rate ",
                                       sup.config.rate, ")")
                                 : cat(", transition ", methods::name_of(plan.method.transition), " from rate ",
                                       plan.method.transition_init))
                       : std::string());
    if (method.needs_masks())
      detail += cat(detail.empty() ? "" : "; ", "ambient: delta ", plan.method.delta,
                    ", the network sees ", 1 - plan.method.delta, " of the observed pixels, hidden ones weighted ",
                    plan.step.hidden_unit_weight ? "1 / sigma_data^2" : "lambda(sigma)");
    files.log(cat("parameters ", core.net().table().total(), ", method ", methods::name_of(plan.method.kind),
                  detail.empty() ? std::string() : " (" + detail + ")"));
    files.log(cat("training ", plan.steps, " steps (", plan.steps * plan.batch / 1e3,
                  " kimg); progress every ", plan.log_every, " steps; checkpoints every ",
                  plan.checkpoint_every, " steps"));
    if (ranks > 1)
      files.log(cat("data parallel over ", ranks, " ranks: ", local_batch,
                    " images per rank and step, gradients ", reducer.path()));
  }

  // ---- initial or resumed state ------------------------------------------------------------
  Checkpointer<Exec> checkpointer(plan, deck_text, method, files, root, resume_from);
  if (resume_from.empty()) {
    method.initialize(plan.init);
  } else {
    checkpointer.restore(at.checkpoint ? std::move(*at.checkpoint) : io::read_checkpoint(resume_from),
                         resume_from);
    at.checkpoint.reset();
  }

  // ---- buffers of one batch ----------------------------------------------------------------
  const int C = tr.C, H = tr.H, W = tr.W, K = ds.classes;
  Kokkos::View<float****, Kokkos::LayoutRight, Exec::memory_space> x0("dmis::train::x0", local_batch, C, H, W);
  // the pixel masks of the observations (Ambient); empty for the other methods
  Kokkos::View<float****, Kokkos::LayoutRight, Exec::memory_space> pixel_mask(
      "dmis::train::pixel_mask", method.needs_masks() ? local_batch : 0, 1, H, W);
  Kokkos::View<int*, Kokkos::LayoutRight, Exec::memory_space> obs("dmis::train::observed", local_batch),
      idx("dmis::train::index", local_batch);
  Kokkos::View<uint8_t**, Kokkos::LayoutRight, Exec::memory_space> cand("dmis::train::candidates",
                                                                         local_batch, K);
  Kokkos::View<uint8_t*, Kokkos::LayoutRight, Exec::memory_space> lab("dmis::train::labeled", local_batch);
  // ---- the loop ----------------------------------------------------------------------------
  const long start = core.step();
  if (start >= plan.steps) {
    if (root) files.log(cat("nothing to do: the run is at step ", start, " of ", plan.steps));
    return 0;
  }
  const uint64_t data_seed = plan.seed ^ 0xD1B54A32D192ED03ull;
  ProgressLog<Exec> progress(plan, method, files, root, start);
  for (long s = start; s < plan.steps; ++s) {
    const bool dmis_on = method.dmis_active(s);
    if (root && is_dmis && dmis_on && (s == start || !method.dmis_active(s - 1)))
      files.log(cat("step ", s, ": DMIS terms on (", method.evaluations_per_step(true),
                    " denoiser evaluations per step against ", method.evaluations_per_step(false),
                    " for vanilla)"));
    dev.gather(Exec(), data_seed, static_cast<uint64_t>(s) * plan.batch, plan.step.ids(), x0, obs,
               cand, lab, idx, pixel_mask);
    method.run(Exec(), x0, obs, cand, lab, pixel_mask, idx);
    progress.add_step(dmis_on);
    const long done = s + 1;
    if (epoch_ends(s, plan.batch, tr.N)) end_epoch(method, ranks, root);
    const bool log_now = done % plan.log_every == 0 || done == plan.steps;
    const bool ckpt_now =
        done == plan.steps || (plan.checkpoint_every > 0 && done % plan.checkpoint_every == 0);
    if (log_now || ckpt_now) {
      progress.collect(done, checkpointer.last());
      if (log_now) progress.report(done, dmis_on);
      if (ckpt_now) checkpointer.save(done);
    }
  }
  if (root) {
    files.log(cat("done: ", plan.steps - start, " steps in ", duration(progress.elapsed()), "; EMA snapshot ",
                  io::checkpoint_path(plan.run_dir, "ema", plan.steps)));
  }
  return 0;
}

}  // namespace dmis::train

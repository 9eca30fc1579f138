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
#include "deck/precision.hpp"
#include "dist/comm.hpp"
#include "dist/reduce.hpp"
#include "io/checkpoint.hpp"
#include "kernels/conv2d.hpp"
#include "kernels/mixed_gemm.hpp"
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

namespace {

/// The network a deck describes: the preset with the deck's overrides; classes and checks later
/// (resolve_network).
models::UNetConfig network_config(const deck::Deck& d) {
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
  const std::string method = d.get_string("method.name");
  if (method == "ambient" || (method == "dmis" && d.get_bool("method.ambient")))
    c.in_channels = c.out_channels + 1;  // the mask channel
  return c;
}

}  // namespace

models::UNetConfig resolve_network(models::UNetConfig c, int classes, const deck::KeyRef& preset_key) {
  c.classes = classes;
  try {
    c.validate();
    models::unet_param_table(c);  // checks the GroupNorm divisibility of every layer
  } catch (const InputError& e) {
    preset_key.fail(e.what());
  }
  return c;
}

models::UNetConfig network_from_deck(const deck::Deck& d, int classes) {
  return resolve_network(network_config(d), classes, d.ref("network.preset"));
}

namespace {

/// run.*, data.* and supervision.*
void plan_run(const deck::Deck& d, RunPlan& p) {
  p.deck_file = d.file();
  p.out_dir = d.get_string("run.out_dir");
  p.run_dir = run_directory(d);
  p.name = fs::path(p.run_dir).filename().string();
  p.resume = Resume::parse(d.get_string("run.resume"));
  p.seed = static_cast<uint64_t>(d.get_int("run.seed"));
  p.log_every = d.get_int("run.log_every");
  p.checkpoint_every = d.get_int("run.checkpoint_every");
  p.keep = d.get_int("run.keep_checkpoints");
  p.data_path = d.get_string("data.path");
  p.train_limit = static_cast<size_t>(d.get_int("data.train_limit"));
  p.test_limit = static_cast<size_t>(d.get_int("data.test_limit"));
  p.labeled_share = d.get_float("data.labeled_share");
  p.labeled_share_key = d.ref("data.labeled_share");

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
  p.supervision_from_dataset = d.get_string("supervision.source") == "dataset";
  p.resume_key = d.ref("run.resume");
}

/// train.*, diffusion.* and network.init
void plan_training(const deck::Deck& d, RunPlan& p) {
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
  p.precision = deck::gemm_precision(d, "train.precision");
  p.precision_key = d.ref("train.precision");
  // process-wide, like the convolution algorithm
  kernels::set_gemm_precision(p.precision, "train.precision");
}

/// method.*
void plan_method(const deck::Deck& d, RunPlan& p) {
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
  p.method.refine_classes = static_cast<int>(d.get_int("method.refine_classes"));
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
  p.method.estep_network =
      parse_choice<methods::EstepNetwork>(d.get_string("method.estep_network"), "method.estep_network");
  p.method.estep_refresh_kimg = d.get_float("method.estep_refresh_kimg");
  p.method.estep_precision = deck::gemm_precision(d, "method.estep_precision");
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
  p.transition_key = d.ref("method.transition");
}

/// The method's cross-key checks that need the batch and the ranks.
void check_method(const deck::Deck& d, const RunPlan& p) {
  const int ranks = dist::size();
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
  if (is_dmis) {  // the checks that need no class count (the step repeats them with it)
    const std::string problem = methods::refine_classes_problem(p.method, 0);
    if (!problem.empty()) d.fail("method.refine_classes", problem);
  }
  if (is_dmis && p.method.estep_refresh_kimg > 0 && p.method.estep_network != methods::EstepNetwork::Warmup)
    d.fail("method.estep_refresh_kimg",
           cat("refreshes the frozen E-step weights of method.estep_network 'warmup'; "
               "method.estep_network is '", d.get_string("method.estep_network"), "'"));
  if (p.labeled_share > 0 && p.supervision.kind != data::SupervisionKind::Unlabeled)
    d.fail("data.labeled_share",
           cat("draws part of every batch from the labelled images of supervision.kind 'unlabeled'; "
               "supervision.kind is '", data::kind_name(p.supervision.kind), "'"));
  if (p.method.prior == methods::PriorMode::Estimate &&
      p.method.supervision != methods::dmis_ops::Supervision::Partial && is_dmis)
    d.fail("method.prior", cat("'estimate' updates the prior from candidate sets (partial labels); "
                               "supervision.kind is '", data::kind_name(p.supervision.kind), "'"));
}

}  // namespace

RunPlan make_plan(const deck::Deck& d) {
  RunPlan p;
  plan_run(d, p);
  plan_training(d, p);
  plan_method(d, p);
  check_method(d, p);
  p.net = network_config(d);
  p.preset_key = d.ref("network.preset");
  p.method_key = d.ref("method.name");
  if (p.method.kind == methods::MethodKind::Diffem) p.diffem = plan_diffem(d, p.batch, p.seed, p.run_dir);
  p.deck_text = d.resolved_yaml();
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

/// The training images and their supervision: read from the run directory when resuming (the
/// run's own draw), else from the dataset or generated from its clean labels and written there.
/// Resolves the plan's network for the dataset's classes (after checking the images against the
/// preset: a network for other images is the cause of any later complaint about its levels).
struct RunData {
  data::Dataset ds;
  data::Supervision sup;
};

RunData load_data(RunPlan& plan, const std::string& resume_from, bool root) {
  RunData r;
  r.ds = data::read_dataset(plan.data_path, /*with_test=*/false, plan.train_limit);
  const auto& tr = r.ds.train;
  const std::string bad = data::image_shape_mismatch(tr, plan.data_path, plan.net.out_channels,
                                                     plan.net.resolution, cat("the network '", plan.net.preset, "'"));
  if (!bad.empty()) plan.preset_key.fail(cat(bad, " (unet-s/unet-m: 1x28x28, ddpmpp-cifar: 3x32x32)"));
  plan.net = resolve_network(plan.net, r.ds.classes, plan.preset_key);
  const std::string sup_file = (fs::path(plan.run_dir) / "supervision.h5").string();
  if (!resume_from.empty() && fs::exists(sup_file)) {
    r.sup = data::read_supervision(sup_file);
    if (r.sup.N != tr.N)
      throw InputError(cat("'", sup_file, "' holds supervision for ", r.sup.N,
                           " images; the training set has ", tr.N));
  } else if (plan.supervision_from_dataset) {
    r.sup = data::supervision_from_split(tr, r.ds.classes, plan.supervision.kind);
  } else {
    // generated from the clean labels (the ground truth when the file carries one)
    plan.supervision.dataset_name = r.ds.name;
    r.sup = data::generate_supervision(tr.clean_labels.empty() ? tr.labels : tr.clean_labels,
                                       r.ds.classes, plan.supervision);
  }
  if (root && resume_from.empty()) data::write_supervision(sup_file, r.sup);
  return r;
}

/// deck.yaml and the log's first lines: the build, the run, the network, the data.
void log_run(RunFiles& files, const RunPlan& plan, const RunData& data, int ranks) {
  const auto& tr = data.ds.train;
  files.write_text("deck.yaml", plan.deck_text);
  files.log(banner());
  files.log(cat("run directory ", plan.run_dir, " (", ranks, " rank", ranks > 1 ? "s" : "",
                ", batch ", plan.batch, ")"));
  files.log(cat("network ", plan.net.describe(), "; 3x3 stride-1 convolutions by ",
                kernels::conv_algorithm_name(kernels::conv_algorithm()),
                plan.precision == kernels::GemmPrecision::BF16
                    ? cat(", their GEMMs in bf16 with fp32 accumulation (",
                          kernels::gemm_bf16_description<Kokkos::DefaultExecutionSpace>(), ")")
                    : std::string()));
  files.log(cat("data ", plan.data_path, ": ", tr.N, " training images of ", tr.C, "x", tr.H,
                "x", tr.W, ", ", data.ds.classes, " classes",
                tr.corrupted() ? cat("; corrupted: ", tr.corruption, " (seed ",
                                     tr.corruption_seed, "), observations and masks only")
                               : std::string()));
  files.log(cat("supervision ", data::summary(data.sup)));
}

/// The DMIS E-step in a few words: its weights, precision and levels (or why there is none).
std::string estep_detail(const RunPlan& plan, methods::MethodStep<Exec>& method) {
  const auto& m = plan.method;
  if (method.estep_skipped())
    return cat("no E-step (clean labels: the posterior is the observed label whatever the classifier says, and ",
               m.beta > 0 ? "the logit scale is not calibrated" : "beta is 0", ": nothing else uses it)");
  const std::string levels =
      m.classifier_sigma_max > 0 ? cat(" evenly at sigma ", m.classifier_sigma, "-", m.classifier_sigma_max)
      : m.classifier_sigma > 0   ? cat(" at sigma ", m.classifier_sigma)
                                 : std::string(" in the DMIS window");
  return cat("E-step on the ",
             m.estep_network != methods::EstepNetwork::Warmup ? std::string("EMA weights")
             : m.estep_refresh_kimg > 0 ? cat("EMA weights frozen at the switch and taken again every ",
                                              m.estep_refresh_kimg, " kimg")
                                        : std::string("warm-up's EMA weights (frozen)"),
             m.estep_precision == kernels::GemmPrecision::BF16 ? " in bf16" : "",
             ", K ", m.timesteps, levels,
             m.refine_classes > 0
                 ? cat(" (draws 2-", m.timesteps, " over the ", m.refine_classes,
                       " classes of largest posterior after draw 1",
                       m.classifier_sigma_max > 0
                           ? cat(", draw 1 at sigma ", method.posterior_classifier()->config().sigmas.at(0))
                           : std::string(),
                       ")")
                 : std::string());
}

/// The DMIS settings in a line: the E-step, the classifier's scale, the fractions, the
/// schedule, the generative objective and the noisy-label model.
std::string dmis_detail(const RunPlan& plan, methods::MethodStep<Exec>& method,
                        const data::Supervision& sup) {
  const auto& m = plan.method;
  const std::string noisy =
      m.supervision != methods::dmis_ops::Supervision::Noisy
          ? std::string()
          : cat(", noisy-label target ", methods::name_of(m.noisy_target),
                m.noisy_target == methods::NoisyTarget::Elr ? cat(" (clamp ", m.elr_clamp, ")") : std::string(),
                m.transition == methods::TransitionMode::Known
                    ? cat(", transition known (", sup.config.noise, " noise at rate ", sup.config.rate, ")")
                    : cat(", transition ", methods::name_of(m.transition), " from rate ", m.transition_init));
  return cat(estep_detail(plan, method),
             m.cls_sigma > 0 ? cat(" (the classification term at sigma ", m.cls_sigma, ")") : std::string(),
             ", logit scale ", method.initial_logit_scale(),
             m.calibrate_scale ? (method.estep_skipped() ? " (not calibrated: no E-step)" : " (calibrated)") : "",
             ", posterior fraction ", m.posterior_fraction, ", classifier fraction ", m.classifier_fraction,
             ", top-k ", m.top_k, ", warm-up ", m.warmup_kimg, " kimg, ramp-in ", m.rampup_kimg,
             " kimg, beta ", m.beta, ", generative term ", methods::name_of(m.gen_objective),
             m.gen_objective == methods::GenObjective::Mixture
                 ? cat(" (tau ", m.tau, ", extra classes ", m.gen_extra, ")")
                 : std::string(),
             m.relabel_confidence > 0
                 ? cat(", the posterior's class where q >= ", m.relabel_confidence, " (else the vanilla label)")
                 : std::string(),
             noisy);
}

/// The log's lines on the method, the length of the run and the ranks.
void log_method(RunFiles& files, const RunPlan& plan, methods::MethodStep<Exec>& method,
                const data::Supervision& sup, int ranks, const std::string& gradient_path) {
  std::string detail;
  if (plan.method.kind == methods::MethodKind::Dmis) detail = dmis_detail(plan, method, sup);
  if (method.needs_masks())
    detail += cat(detail.empty() ? "" : "; ", "ambient: delta ", plan.method.delta,
                  ", the network sees ", 1 - plan.method.delta, " of the observed pixels, hidden ones weighted ",
                  plan.step.hidden_unit_weight ? "1 / sigma_data^2" : "lambda(sigma)");
  files.log(cat("parameters ", method.core().net().table().total(), ", method ",
                methods::name_of(plan.method.kind), detail.empty() ? std::string() : " (" + detail + ")"));
  files.log(cat("training ", plan.steps, " steps (", plan.steps * plan.batch / 1e3,
                " kimg); progress every ", plan.log_every, " steps; checkpoints every ",
                plan.checkpoint_every, " steps"));
  if (ranks > 1)
    files.log(cat("data parallel over ", ranks, " ranks: ", plan.batch / ranks,
                  " images per rank and step, gradients ", gradient_path));
}

/// The sums over the ranks of one step: the flat gradient buffer and, for DMIS, the step's
/// transition counts (every rank then holds the same estimate, as with one rank). Hooked into
/// the method for its lifetime; nothing with one rank.
struct RankSums {
  dist::DeviceReducer<Exec> grads, counts;
  RankSums(methods::MethodStep<Exec>& method, bool is_dmis)
      : grads(method.core().store().grads.extent(0)), counts(is_dmis ? method.step_sums_size() : 1) {
    if (dist::size() == 1) return;
    method.core().on_gradients = [this](const Exec& e, const Tensor1<float, Exec>& g) { grads.sum(e, g); };
    if (is_dmis)
      method.on_step_sums = [this](const Exec& e, const Tensor1<float, Exec>& c) { counts.sum(e, c); };
  }
  RankSums(const RankSums&) = delete;
  RankSums& operator=(const RankSums&) = delete;
};

/// The clean labels on the device for the DMIS posterior's diagnostics (never for training);
/// empty for the other methods. The method keeps an unmanaged view: the caller holds this one.
Kokkos::View<int*, Kokkos::LayoutRight, Exec::memory_space> audit_labels(const RunPlan& plan,
                                                                       const data::Split& tr) {
  const std::vector<int32_t>& labels =
      plan.supervision_from_dataset ? tr.clean_labels : (tr.clean_labels.empty() ? tr.labels : tr.clean_labels);
  Kokkos::View<int*, Kokkos::LayoutRight, Exec::memory_space> audit(
      "dmis::train::audit_labels", plan.method.kind == methods::MethodKind::Dmis ? labels.size() : 0);
  auto h = Kokkos::create_mirror_view(audit);
  for (size_t i = 0; i < audit.extent(0); ++i) h(i) = labels[i];
  Kokkos::deep_copy(audit, h);
  return audit;
}

/// One batch on the device, allocated once: the images (or observations), their pixel masks
/// (Ambient; empty otherwise), the supervision and the sample indices.
struct Batch {
  template <class T>
  using View = Kokkos::View<T, Kokkos::LayoutRight, Exec::memory_space>;
  View<float****> x0, pixel_mask;          // [B, C, H, W], [B or 0, 1, H, W]
  View<int*> observed, index;              // [B]
  View<uint8_t**> candidates;              // [B, K]
  View<uint8_t*> labeled;                  // [B]
  Batch(int B, int C, int H, int W, int K, bool masks)
      : x0("dmis::train::x0", B, C, H, W),
        pixel_mask("dmis::train::pixel_mask", masks ? B : 0, 1, H, W),
        observed("dmis::train::observed", B),
        index("dmis::train::index", B),
        candidates("dmis::train::candidates", B, K),
        labeled("dmis::train::labeled", B) {}
};

/// The steps from the method's current one to the plan's last: gather, step, epoch's end, log,
/// checkpoint.
void train_loop(const RunPlan& plan, methods::MethodStep<Exec>& method, const DeviceData<Exec>& dev,
                const data::Split& tr, Checkpointer<Exec>& checkpointer, RunFiles& files, int ranks,
                bool root) {
  const long start = method.core().step();
  Batch b(plan.batch / ranks, tr.C, tr.H, tr.W, dev.classes(), method.needs_masks());
  const uint64_t data_seed = plan.seed ^ 0xD1B54A32D192ED03ull;
  const bool is_dmis = plan.method.kind == methods::MethodKind::Dmis;
  ProgressLog<Exec> progress(plan, method, files, root, start);
  for (long s = start; s < plan.steps; ++s) {
    const bool dmis_on = method.dmis_active(s);
    if (root && is_dmis && dmis_on && (s == start || !method.dmis_active(s - 1)))
      files.log(cat("step ", s, ": DMIS terms on (", method.evaluations_per_step(true),
                    " denoiser evaluations per step against ", method.evaluations_per_step(false),
                    " for vanilla)"));
    dev.gather(Exec(), data_seed, static_cast<uint64_t>(s) * plan.batch, plan.step.ids(), b.x0,
               b.observed, b.candidates, b.labeled, b.index, b.pixel_mask);
    method.run(Exec(), b.x0, b.observed, b.candidates, b.labeled, b.pixel_mask, b.index);
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
  if (root)
    files.log(cat("done: ", plan.steps - start, " steps in ", duration(progress.elapsed()), "; EMA snapshot ",
                  io::checkpoint_path(plan.run_dir, "ema", plan.steps)));
}

}  // namespace

int train(const deck::Deck& d) {
  RunPlan plan = make_plan(d);
  if (plan.diffem) return train_run(diffem_laps(plan));
  return train_run(std::move(plan));
}

int train_run(RunPlan plan) {
  if (plan.method.kind == methods::MethodKind::Diffem)
    throw InputError("method.name diffem is a pipeline of runs: train it with train(), not train_run()");
  const bool root = dist::rank() == 0;
  const int ranks = dist::size();

  // the run directory: its resume policy, then created (checks that it is writable first)
  RunFiles files(plan.run_dir, root);
  ResumePoint at = resume_point(files, plan.resume, plan.resume_key);
  const std::string resume_from = at.from;
  dist::barrier();  // every rank has looked at the directory before rank 0 writes into it
  files.create();
  if (root)
    for (const auto& line : at.notes) files.log(line);
  if (root && at.restarted) files.truncate_stats_after(0);  // the records of the run that stopped

  const RunData data = load_data(plan, resume_from, root);
  const auto& tr = data.ds.train;
  if (root) log_run(files, plan, data, ranks);
  DeviceData<Exec> dev =
      tr.corrupted() ? DeviceData<Exec>(tr.N, tr.C, tr.H, tr.W, data.ds.classes, tr.observations, tr.masks,
                                        data.sup.observed, data.sup.candidates, data.sup.labeled)
                     : DeviceData<Exec>(tr.N, tr.C, tr.H, tr.W, data.ds.classes, tr.images,
                                        data.sup.observed, data.sup.candidates, data.sup.labeled);
  try {
    dev.set_labeled_share(plan.batch, plan.labeled_share);
  } catch (const InputError& e) {
    plan.labeled_share_key.fail(e.what());
  }
  if (root && dev.labeled_slots() > 0)
    files.log(cat("data.labeled_share ", plan.labeled_share, ": ", dev.labeled_slots(), " labelled images in every batch of ",
                  plan.batch, " (the labelled and the unlabelled images each in epochs of their own)"));
  const bool is_dmis = plan.method.kind == methods::MethodKind::Dmis;
  if (is_dmis && plan.method.supervision == methods::dmis_ops::Supervision::Noisy &&
      plan.method.transition == methods::TransitionMode::Known) {
    try {
      plan.method.known_transition = data::noise_transition(data.sup);
    } catch (const InputError& e) {
      plan.transition_key.fail(cat("'known': ", e.what()));
    }
  }
  methods::MethodStep<Exec> method(plan.net, plan.step, plan.method, plan.batch / ranks, plan.conv_scratch_mb);
  RankSums sums(method, is_dmis);
  const auto audit = audit_labels(plan, tr);
  if (audit.extent(0) > 0) method.set_audit_labels(audit);
  if (root) log_method(files, plan, method, data.sup, ranks, sums.grads.path());

  // the initial or resumed state
  Checkpointer<Exec> checkpointer(plan, method, files, root, resume_from);
  if (resume_from.empty()) {
    method.initialize(plan.init);
  } else {
    checkpointer.restore(at.checkpoint ? std::move(*at.checkpoint) : io::read_checkpoint(resume_from),
                         resume_from);
    at.checkpoint.reset();
  }
  if (method.core().step() >= plan.steps) {
    if (root) files.log(cat("nothing to do: the run is at step ", method.core().step(), " of ", plan.steps));
    return 0;
  }
  train_loop(plan, method, dev, tr, checkpointer, files, ranks, root);
  return 0;
}

}  // namespace dmis::train

// The one registry of deck keys: type, default, range or choices, and one line of doc each.
// The validator, `dmis check-deck --keys` and docs/decks.md are generated from this table.
#include "deck/deck.hpp"

namespace dmis::deck {

namespace {
constexpr double kInf = 1e300;

KeySpec I(const char* path, const char* def, double lo, double hi, const char* doc,
          const char* default_doc = "") {
  KeySpec k;
  k.path = path, k.type = Type::Int, k.fallback = def, k.min = lo, k.max = hi, k.doc = doc;
  k.default_doc = default_doc;
  return k;
}
KeySpec F(const char* path, const char* def, double lo, double hi, const char* doc,
          const char* default_doc = "") {
  KeySpec k = I(path, def, lo, hi, doc, default_doc);
  k.type = Type::Float;
  return k;
}
KeySpec B(const char* path, const char* def, const char* doc) {
  KeySpec k;
  k.path = path, k.type = Type::Bool, k.fallback = def, k.doc = doc;
  return k;
}
KeySpec S(const char* path, const char* def, std::vector<std::string> choices, const char* doc,
          const char* default_doc = "") {
  KeySpec k;
  k.path = path, k.type = Type::String, k.fallback = def, k.choices = std::move(choices);
  k.doc = doc, k.default_doc = default_doc;
  return k;
}
KeySpec L(const char* path, const char* def, double lo, double hi, const char* doc,
          const char* default_doc = "") {
  KeySpec k = I(path, def, lo, hi, doc, default_doc);
  k.type = Type::IntList;
  return k;
}
KeySpec required(KeySpec k) {
  k.required = true;
  return k;
}
}  // namespace

const std::vector<KeySpec>& registry() {
  static const std::vector<KeySpec> keys = {
      // ---- run ---------------------------------------------------------------------------
      S("run.name", "", {}, "run directory name under run.out_dir", "the deck's file name"),
      S("run.out_dir", "runs", {}, "where run directories are created"),
      I("run.seed", "1", 0, 4294967295.0, "seed of everything random in the run"),
      S("run.resume", "none", {},
        "`none` (a new run; refuses an existing run directory), `latest` (continue from the "
        "newest complete checkpoint of this run; from step 0 where it has none yet) or a "
        "checkpoint file. One run at a time writes a run directory (its .lock)"),
      I("run.log_every", "50", 1, kInf, "steps between progress lines and stats.jsonl records"),
      I("run.checkpoint_every", "500", 0, kInf,
        "steps between checkpoints (0: only at the end)"),
      I("run.keep_checkpoints", "2", 1, kInf, "complete checkpoints kept (older ones are removed)"),
      // ---- data --------------------------------------------------------------------------
      required(S("data.path", "", {}, "HDF5 dataset written by `dmis import` (docs/datasets.md)")),
      I("data.train_limit", "0", 0, kInf, "use only the first N training images (0: all)"),
      I("data.test_limit", "0", 0, kInf, "evaluate on the first N test images (0: all)"),
      F("data.labeled_share", "0", 0, 0.999,
        "supervision.kind unlabeled: this share of every batch drawn from the labelled images, "
        "the rest from the unlabelled ones, each in its own epochs (as semi-supervised trainers "
        "batch them, e.g. FixMatch's 1 in 8); 0: the data's own share (1 % labelled: 0.6 "
        "labelled images a batch of 64)"),
      // ---- supervision -------------------------------------------------------------------
      S("supervision.kind", "clean", {"clean", "noisy", "partial", "unlabeled"},
        "what the training labels are: clean, noisy labels, candidate sets, or mostly missing"),
      S("supervision.source", "generate", {"generate", "dataset"},
        "`generate`: made from the clean labels by a seeded generator and saved with the run; "
        "`dataset`: the imprecise labels stored in the dataset file"),
      S("supervision.noise", "symmetric", {"symmetric", "asymmetric"},
        "noisy labels: flip to a random other class, or along the dataset's class map"),
      F("supervision.rate", "0.4", 0, 1, "noisy labels: probability of a flip"),
      S("supervision.partial", "random", {"random", "class50"},
        "partial labels: each wrong class joins with probability q, or class-dependent "
        "(0.7/0.5/0.3 by cyclic offset)"),
      F("supervision.q", "0.5", 0, 1, "partial labels (random): inclusion probability of a wrong class"),
      F("supervision.labeled_fraction", "0.1", 1e-6, 1,
        "unlabeled: class-balanced fraction of the training set that keeps its label"),
      I("supervision.seed", "-1", -1, 4294967295.0, "generator seed (-1: run.seed)"),
      // ---- network -----------------------------------------------------------------------
      S("network.preset", "unet-s", {"unet-s", "unet-m", "ddpmpp-cifar"},
        "network preset (spec/unet.md); the keys below override its knobs"),
      I("network.base", "0", 0, 4096, "channels of the first level (0: the preset's)"),
      L("network.mults", "[]", 1, 64, "channel multiplier per level", "the preset's"),
      I("network.n_blocks", "0", 0, 64, "ResBlocks per level (0: the preset's)"),
      L("network.attn_res", "[]", 1, 4096, "resolutions with attention", "the preset's"),
      I("network.groups", "0", 0, 1024, "GroupNorm groups (0: the preset's)"),
      F("network.dropout", "0", 0, 0.99, "dropout before the second conv of every ResBlock"),
      S("network.init", "adm", {"adm", "torch"},
        "initialisation: PyTorch defaults, or with each block's last conv at zero (adm)"),
      // ---- diffusion ---------------------------------------------------------------------
      F("diffusion.P_mean", "-1.2", -10, 10, "training noise: mean of ln(sigma)"),
      F("diffusion.P_std", "1.2", 1e-3, 10, "training noise: standard deviation of ln(sigma)"),
      F("diffusion.sigma_data", "0.5", 1e-3, 10, "standard deviation of the data (EDM)"),
      F("diffusion.p_uncond", "0.1", 0, 1,
        "probability of training with the 'no label' token (classifier-free guidance)"),
      // ---- method ------------------------------------------------------------------------
      S("method.name", "vanilla", {"vanilla", "dmis", "ambient", "diffem"},
        "vanilla: conditional EDM on the observed label; dmis: spec/method.md section 4; "
        "ambient: Ambient Diffusion on corrupted images; diffem: DiffEM (section 5)"),
      B("method.ambient", "false",
        "dmis on corrupted images: Ambient's mask channel and masked objective, with the "
        "label posterior of DMIS (noisy labels and missing pixels in one run)"),
      F("method.delta", "0.1", 0, 0.99,
        "ambient: rate of the further corruption of the seen pixels (fixed per image)"),
      S("method.hidden_weight", "unit", {"unit", "edm"},
        "ambient: loss weight of an observed pixel the further mask hid from the network; "
        "unit: EDM's unit weight on the network output (1 / sigma_data^2), edm: lambda(sigma) "
        "as on the seen pixels (the inpainting error then dominates at low noise)"),
      F("method.beta", "1", 0, 1e6, "dmis: weight of the classification loss"),
      F("method.warmup_kimg", "0", 0, 1e9,
        "dmis: thousands of images of plain conditional training before the DMIS terms"),
      S("method.cls_push", "both", {"both", "pull"},
        "dmis: the classification term's gradient; both: the loss's own (lowers the target "
        "classes' denoising errors, raises the others'); pull: only the lowering half, so that "
        "the denoiser is never trained to be worse for a class (conditional sampling survives)"),
      F("method.rampup_kimg", "0", 0, 1e9,
        "dmis: thousands of images after the warm-up over which the DMIS terms ramp in "
        "linearly: a sample's generative class comes from the posterior with probability r "
        "(else the observed label, as vanilla), the classification loss weighs r beta"),
      I("method.timesteps", "1", 1, 64,
        "dmis: noise levels K of the diffusion classifier during training"),
      I("method.refine_classes", "0", 0, 4096,
        "dmis: > 0: only the first of the posterior classifier's method.timesteps noise draws "
        "is over every class; the other draws are over this many classes of largest posterior "
        "after it, and the posterior is over those classes alone (the logit scale's calibration "
        "over every class). Needs method.classifier_sigma > 0; with classifier_sigma_max the "
        "first draw is at the middle level (index K / 2) and the others at the remaining "
        "levels: the E-step's cost for the draws that decide its arg-max. "
        "0: every draw over every class"),
      F("method.window", "6.4", 1e-6, 1e6, "dmis: width of the classifier's sigma window (DMIS)"),
      F("method.classifier_sigma", "0", 0, 1e3,
        "dmis: 0: the classifier's K noise levels from the DMIS window (K = 1: its median, "
        "0.30); > 0: all K at this sigma, with independent noise"),
      F("method.classifier_sigma_max", "0", 0, 1e3,
        "dmis: > method.classifier_sigma: the posterior classifier's K levels evenly spaced from "
        "classifier_sigma to this sigma, weighted alike (K = 1: their midpoint); a model trained "
        "on noisy labels carries its class information at sigma 2-6 "
        "(docs/results-label-purity.md); 0: all K at classifier_sigma"),
      F("method.cls_sigma", "0", 0, 1e3,
        "dmis: sigma at which the classification term trains the live classifier (its K points, "
        "independent noise); 0: the levels of the posterior's classifier (method.classifier_sigma "
        "or the window). The pseudo-targets stay where the EMA classifier is most accurate, the "
        "push on the other classes' denoising goes where the sampler has already chosen the class"),
      F("method.classifier_fraction", "0.25", 1e-6, 1,
        "dmis: fraction of each batch that gets the classification loss"),
      I("method.top_k", "10", 1, 4096, "dmis: classes kept in the classifier (by EMA posterior)"),
      I("method.gen_extra", "2", 0, 1024,
        "dmis: classes besides the top one mixed into the generative term without gradient"),
      F("method.relabel_confidence", "0", 0, 1,
        "dmis: the generative term takes the posterior's class only where the posterior q "
        "gives its top class at least this; elsewhere the sample trains on its vanilla label "
        "(noisy labels: the observed one; unlabelled images: the null label). 0: always the "
        "posterior's (Eq. 10)"),
      S("method.estep_network", "ema", {"ema", "warmup"},
        "dmis: the weights of the posterior's classifier (the E-step); ema: the EMA network of "
        "every step (it learns from the classes the E-step gave); warmup: the EMA as the warm-up "
        "left it, frozen at the first DMIS step (the E-step never learns from its own relabels, "
        "so a confusion cannot feed itself; the posterior does not improve with training either)"),
      S("method.estep_precision", "fp32", {"fp32", "bf16"},
        "dmis: the GEMM precision of the E-step's forward-only evaluations (the posterior's "
        "diffusion classifier, most of a DMIS step's cost): bf16 takes the convolutions' GEMMs in "
        "bf16 with fp32 accumulation there alone (as train.precision does for the whole step; "
        "needs the same mixed GEMM), the training step keeps train.precision; with method.beta 0 also "
        "the classification term's forward (L_cls for the log alone)"),
      F("method.estep_refresh_kimg", "0", 0, 1e9,
        "dmis, method.estep_network warmup: the frozen E-step weights are taken again from the EMA "
        "every this many kimg after the switch (a target network: the E-step learns from its own "
        "relabels only between refreshes); 0: never, the warm-up's weights throughout"),
      F("method.tau", "0.01", 0, 1,
        "dmis: generative loss: classes with weight above tau are mixed in (without gradient)"),
      F("method.logit_scale", "0", 0, 1e6,
        "diffusion classifier logit scale s; 0: the number of values of an image (the squared "
        "error summed over pixels, DMIS Eq. 12); 1: a mean over pixels (a nearly flat posterior)"),
      S("method.noisy_target", "posterior", {"posterior", "elr"},
        "dmis, noisy labels: target of the classification term; posterior: p(y | x, ŷ) ∝ "
        "p(ŷ | y) p_phi(y | x) with the transition estimated while training; elr: DMIS Eq. 15"),
      F("method.elr_clamp", "1e-4", 0, 0.1,
        "dmis, noisy_target elr: probabilities clamped to [c, 1 - c] as in ELR's reference, "
        "without gradient outside (0: the paper's unclamped formula)"),
      F("method.posterior_fraction", "1", 1e-6, 1,
        "dmis: fraction of each batch whose generative class comes from the EMA posterior "
        "(Eq. 10: every sample); the rest trains on the observed label as vanilla does"),
      S("method.gen_objective", "sample", {"sample", "mixture"},
        "dmis: generative term; sample: a class drawn from the posterior (Eq. 7's M-step, "
        "unbiased, one evaluation per sample); mixture: TDSM's mixture of the top class and "
        "gen_extra more above tau"),
      F("method.transition_momentum", "0.98", 0, 1,
        "dmis, noisy labels: per-step decay of the expected counts (online EM) that estimate p(ŷ | y)"),
      B("method.calibrate_scale", "true",
        "dmis: calibrate the logit scale while training by maximum likelihood of the observed "
        "supervision under the diffusion classifier (starting from method.logit_scale)"),
      F("method.scale_momentum", "0.9", 0, 1,
        "dmis: per-step smoothing of that calibration on log s (the scale of largest "
        "likelihood on a grid from 1 to 4096, each batch)"),
      S("method.transition", "estimate", {"estimate", "fixed", "known"},
        "dmis, noisy labels: p(ŷ | y) by online EM from method.transition_init, or fixed "
        "there (a known noise rate; EM also charges the classifier's own errors to the labels "
        "while the classifier is weak), or known: fixed at the process that corrupted the "
        "labels (supervision.noise, rate and, for asymmetric noise, its class map; labels "
        "generated by dmis only)"),
      F("method.transition_init", "0.5", 0, 0.99,
        "dmis, noisy labels: the transition EM starts from: labels wrong with this "
        "probability, evenly over the other classes (weighted as the counts' steady state)"),
      F("method.transition_prior", "1", 1e-6, 1e9,
        "dmis, noisy labels: Dirichlet pseudo-samples per row of the transition estimate"),
      S("method.prior", "uniform", {"uniform", "estimate"},
        "class prior of the classifier; estimate: once per epoch from the EMA arg-max"),
      F("method.prior_momentum", "0.9", 0, 1, "dmis: momentum of the estimated prior"),
      // ---- diffem -------------------------------------------------------------------------
      I("diffem.laps", "3", 1, 1000, "diffem: EM laps (M-step, then E-step over the whole dataset)"),
      F("diffem.lap_kimg", "16", 1e-3, 1e9,
        "diffem: training of the posterior denoiser per lap, in thousands of images"),
      F("diffem.final_kimg", "0", 0, 1e9,
        "diffem: training of the final model on the last reconstructions (0: train.kimg/steps)"),
      S("diffem.start", "mean", {"mean", "observation", "ppca", "ppca_mean"},
        "diffem: lap-0 reconstruction: mean (observed pixels, the per-pixel mean of the observed "
        "values elsewhere: the posterior mean under a diagonal Gaussian prior), the observation, "
        "ppca (a posterior draw under a rank-r Gaussian prior fitted by EM to the observations; "
        "masked data only) or ppca_mean (its posterior mean)"),
      I("diffem.ppca_rank", "16", 1, 256, "diffem: rank of the Gaussian prior of the ppca start"),
      I("diffem.ppca_iters", "20", 0, 10000, "diffem: EM iterations of the ppca start"),
      I("diffem.sample_steps", "12", 1, 10000, "diffem: Heun steps of the E-step sampler"),
      I("diffem.sample_batch", "100", 1, 1 << 20, "diffem: images per E-step sampler batch"),
      // ---- train -------------------------------------------------------------------------
      I("train.batch", "64", 1, 1 << 20, "images per step (over all ranks)"),
      I("train.steps", "0", 0, kInf, "training length in steps (0: use train.kimg)"),
      F("train.kimg", "0", 0, 1e9, "training length in thousands of images (0: use train.steps)"),
      F("train.lr", "0.001", 0, 1e6, "AdamW learning rate"),
      F("train.lr_rampup_kimg", "0", 0, 1e9, "linear learning-rate warm-up"),
      F("train.beta1", "0.9", 0, 0.999999, "AdamW beta1"),
      F("train.beta2", "0.999", 0, 0.99999999, "AdamW beta2"),
      F("train.eps", "1e-8", 1e-20, 1, "AdamW epsilon"),
      F("train.weight_decay", "0", 0, 10, "AdamW decoupled weight decay"),
      F("train.grad_clip", "0", 0, 1e9, "maximum global gradient norm (0: no clipping)"),
      F("train.ema_halflife_kimg", "500", 1e-6, 1e9,
        "EMA half-life in thousands of images (DMIS: 0.5 Mimg)"),
      F("train.ema_rampup_ratio", "0.05", 0, 1e6,
        "EMA half-life at most images-seen times this (0: off)"),
      F("train.ema_decay", "0", 0, 1, "per-step EMA decay; overrides the half-life when > 0"),
      F("train.conv_scratch_mb", "0", 0, 1e6, "im2col scratch cap in MB (0: automatic)"),
      S("train.precision", "fp32", {"fp32", "bf16"},
        "the 3x3 convolutions' GEMMs: fp32, or bf16 inputs with fp32 accumulation (a mixed-precision "
        "GEMM: oneDNN on CPUs); weights, optimizer and every other operation stay fp32"),
      // ---- sample ------------------------------------------------------------------------
      I("sample.steps", "18", 1, 10000, "Heun steps"),
      F("sample.sigma_min", "0.002", 1e-9, 1e6, "smallest noise level"),
      F("sample.sigma_max", "80", 1e-6, 1e9, "largest noise level"),
      F("sample.rho", "7", 1e-3, 1e3, "noise-level spacing exponent"),
      F("sample.churn", "0", 0, 1e6, "stochastic churn S_churn (0: deterministic)"),
      F("sample.guidance", "1", 0, 1e3, "classifier-free guidance scale w (1: plain conditional)"),
      B("sample.clip_denoised", "false",
        "clamp every denoiser output to the data range [-1, 1] during sampling (the reference "
        "Ambient sampler does; the last step's output is the sample)"),
      I("sample.per_class", "10", 1, 1 << 20, "images generated per class"),
      I("sample.batch", "100", 1, 1 << 20, "images per sampler batch"),
      I("sample.seed", "-1", -1, 4294967295.0, "sampler seed (-1: run.seed)"),
      B("sample.use_ema", "true", "sample with the EMA weights"),
      // ---- classify ----------------------------------------------------------------------
      S("classify.timesteps", "window", {"window", "uniform"},
        "noise levels of the diffusion classifier: DMIS window or uniform grid"),
      I("classify.points", "4", 1, 1024, "noise levels K per class"),
      F("classify.window", "6.4", 1e-6, 1e6, "width of the sigma window (timesteps: window)"),
      F("classify.uniform_min", "0.0001", 1e-6, 1e6,
        "smallest sigma of the uniform grid (Chen et al.'s 1e-4)"),
      F("classify.uniform_max", "3", 1e-6, 1e6, "largest sigma of the uniform grid"),
      S("classify.weights", "elbo", {"elbo", "equal"},
        "uniform grid: the ELBO's weights lambda(sigma) p(sigma) d_sigma, or lambda(sigma) / K "
        "for every level alike (the window's weights are always lambda(sigma) / K)"),
      I("classify.batch", "32", 1, 1 << 20, "images per classifier batch (each x classes x K)"),
      S("classify.precision", "fp32", {"fp32", "bf16"},
        "the GEMM precision of dmis classify's evaluations: bf16 takes the convolutions' GEMMs in "
        "bf16 with fp32 accumulation (as train.precision and method.estep_precision do; needs the "
        "same mixed GEMM)"),
      B("classify.use_ema", "true", "classify with the EMA weights"),
  };
  return keys;
}

}  // namespace dmis::deck

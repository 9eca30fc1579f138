#pragma once
// One EDM training step on the device: label dropout, training noise, preconditioning, the
// UNet forward and backward, the weighted loss, gradient clipping, AdamW and the EMA update.
// Everything per sample is a Kokkos kernel; the host only launches. Buffers are allocated once
// by the constructor, so a step allocates, copies and fences nothing.
#include <cstdint>
#include <functional>
#include <memory>

#include "core/params.hpp"
#include "diffusion/edm.hpp"
#include "models/unet.hpp"
#include "optim/optimizer.hpp"

namespace dmis::methods {

struct TrainStepConfig {
  diffusion::EdmConfig edm;
  optim::AdamWConfig opt;
  double ema_decay = 0.0;           // per-step EMA decay; 0: use the half-life instead
  double ema_halflife_kimg = 500;   // EMA half-life in thousands of images (EDM)
  double ema_rampup_ratio = 0.05;   // EDM: half-life <= images seen * ratio; 0 turns it off
  double lr_rampup_kimg = 0;        // linear learning-rate warm-up over this many kimg
  double p_uncond = 0.1;            // probability of replacing the label by "no label"
  // Ambient: a pixel the loss sees but the input hid gets EDM's unit weight on F (1 / sd^2 on D)
  // instead of lambda(sigma) (method.hidden_weight: unit | edm; see edm_step.cpp)
  bool hidden_unit_weight = true;
  uint64_t seed = 1;
  int global_batch = 0;             // images per step over all ranks (0: the local batch)
  int sample_offset = 0;            // global index of this rank's first sample in a batch
  int sample_stride = 1;            // and between its samples (ranks; shards are interleaved)
  rng::SampleIds ids() const {
    return {static_cast<uint32_t>(sample_offset), static_cast<uint32_t>(sample_stride)};
  }
};

template <class Exec>
class EdmTrainStep {
public:
  using T = float;
  using X = Tensor4<T, Exec>;
  using V1 = Tensor1<T, Exec>;

  EdmTrainStep(const models::UNetConfig& net, const TrainStepConfig& cfg, int local_batch,
               double conv_scratch_mb = 0);

  /// Parameters from the seed; Adam moments zero; EMA = parameters; step counter 0.
  void initialize(models::InitScheme scheme);

  /// One training step on x0 (B, C, H, W) in [-1, 1] and labels (B) in [0, K]: the labels are
  /// dropped to "no label" with probability p_uncond, then begin(), sample_inputs(),
  /// generative_loss() and finish().
  void run(const Exec& exec, const Tensor4<const T, Exec>& x0, const Tensor1<const int, Exec>& labels);

  // ---- the pieces of a step, for methods that add their own terms ---------------------------
  /// Zeroes the gradients.
  void begin(const Exec& exec);
  /// out (B) = labels, or K ("no label") with probability p_uncond (keyed by step and sample).
  void drop_labels(const Exec& exec, const Tensor1<const int, Exec>& labels,
                   const Tensor1<int, Exec>& out) const;
  /// Draws sigma and noise, and forms x_sigma, the network input, c_noise and lambda(sigma).
  /// A network with a mask channel (Ambient Diffusion, masked_input()) takes the input mask
  /// (B, 1, H, W): x_sigma = mask * (x0 + sigma n), net_in = [c_in x_sigma, mask]. A conditional
  /// denoiser (DiffEM's posterior) takes conditioning channels cond (B, Cc, H, W): net_in =
  /// [c_in x_sigma, cond]. The network's in_channels must match.
  void sample_inputs(const Exec& exec, const Tensor4<const T, Exec>& x0,
                     const Tensor4<const T, Exec>& mask = Tensor4<const T, Exec>(),
                     const Tensor4<const T, Exec>& cond = Tensor4<const T, Exec>());
  /// Whether the network takes the mask as an extra input channel.
  bool masked_input() const { return m_net.config().in_channels == m_net.config().out_channels + 1; }
  /// The weighted denoising loss of the mixture D_bar = w (B) * D(x_sigma; sigma, labels) + rest
  /// (B, C, H, W; no gradient), added to the gradients with weight `scale`. Without w and rest
  /// (empty views) this is plain conditional EDM. With loss_mask (B, 1, H, W) the squared error
  /// counts only where the mask is 1 (Ambient: x0 is the observation, 0 where missing).
  /// Writes loss().
  void generative_loss(const Exec& exec, const Tensor4<const T, Exec>& x0,
                       const Tensor1<const int, Exec>& labels, const Tensor1<const T, Exec>& w,
                       const Tensor4<const T, Exec>& rest, T scale = T(1),
                       const Tensor4<const T, Exec>& loss_mask = Tensor4<const T, Exec>());
  /// Gradient hook, clipping, AdamW and EMA; advances the step counter.
  void finish(const Exec& exec);
  /// The inputs sample_inputs() drew (valid until the next call).
  Tensor1<T, Exec> sigma() const { return V1(m_sigma.data(), m_batch); }
  Tensor4<T, Exec> x_sigma() const;

  /// Called between backward and the optimizer with the flat gradient buffer (MPI all-reduce).
  std::function<void(const Exec&, const V1&)> on_gradients;

  long step() const { return m_step; }
  void set_step(long s) { m_step = s; }
  double images_seen() const { return static_cast<double>(m_step) * global_batch(); }
  int global_batch() const { return m_cfg.global_batch > 0 ? m_cfg.global_batch : m_batch; }
  int local_batch() const { return m_batch; }
  double learning_rate(long step) const;
  double ema_beta(long step) const;

  models::UNet<Exec, T>& net() { return m_net; }
  ParamStore<Exec, T>& store() { return m_store; }
  const TrainStepConfig& config() const { return m_cfg; }

  /// Device scalars of the last step: the mean loss and the squared gradient norm.
  V1 loss() const { return V1(m_loss.data(), 1); }
  V1 grad_norm2() const { return V1(m_norm2.data(), 1); }
  V1 per_sample_loss() const { return V1(m_per_sample.data(), m_batch); }
  /// Reads the last loss and gradient norm back to the host (fences: for logging only).
  void read_scalars(double& loss, double& grad_norm) const;

  /// Counted FLOPs of one step (forward and backward GEMM-shaped work of the local batch).
  double flops_per_step() const;

private:
  TrainStepConfig m_cfg;
  int m_batch;
  models::UNet<Exec, T> m_net;
  ParamStore<Exec, T> m_store;
  long m_step = 0;
  // per-step buffers
  Buffer1<T, Exec> m_sigma, m_weight, m_c_noise, m_per_sample, m_loss, m_norm2, m_norm_scratch;
  Buffer1<T, Exec> m_noise, m_x_sigma, m_net_in, m_D, m_dD;
  Buffer1<int, Exec> m_labels;
  Tensor4<const T, Exec> m_input_mask;  // Ambient: the mask the last sample_inputs() applied
  typename Buffer1<T, Exec>::HostMirror m_host_scalars;
};

}  // namespace dmis::methods

#include "methods/edm_step.hpp"

#include <algorithm>
#include <cmath>

#include "core/rng.hpp"
#include "kernels/common.hpp"
#include "kernels/eti.hpp"
#include "kernels/loss.hpp"
#include "kernels/tensor_ops.hpp"

namespace dmis::methods {

namespace {
template <class Exec>
Buffer1<float, Exec> buffer(const char* name, size_t n) {
  return Buffer1<float, Exec>(std::string("dmis::train::") + name, n);
}

// Ambient's per-pixel loss factor r (spec/method.md section 5): the loss sees the pixels the
// observation has (loss mask A) and nothing else; among those, a pixel the network saw (input
// mask Ã) keeps EDM's weight lambda(sigma), and a pixel it did not see (A = 1, Ã = 0), whose
// prediction is D = sigma_data F with no skip term, is scaled by c_out(sigma) / sigma_data when
// `unit` is set, so that its weight lambda r^2 = 1 / sigma_data^2 is EDM's unit weight on F
// (lambda c_out^2 = 1). Without that factor the inpainting error, which does not shrink with
// sigma, carries lambda(sigma) ~ 1 / sigma^2: the low-noise samples swamp the gradient.
// The factor depends on sigma and the masks only, so the minimiser E[x0 | Ã x_sigma, Ã] of
// Ambient's Theorem 1 is unchanged.
template <class Exec>
struct AmbientLossFactor {
  Tensor4<const float, Exec> A, At;  // the loss mask and the input mask (may be empty: all seen)
  Tensor1<const float, Exec> sigma;
  float sigma_data;
  bool unit;
  int hw, n;  // pixels per channel, values per sample
  KOKKOS_INLINE_FUNCTION float operator()(size_t r) const {
    const size_t b = r / n, p = b * hw + (r % n) % hw;
    const float seen = At.extent(0) != 0 ? At.data()[p] : 1.f;
    const float g = unit ? diffusion::EdmScaling<float>(sigma(b), sigma_data).c_out / sigma_data : 1.f;
    return A.data()[p] * (seen + (1.f - seen) * g);
  }
};

// forward: D = x0 + r (D - x0), so that the MSE against x0 weighs value r by lambda_b r^2
template <class Exec>
void apply_loss_factor(const Exec& exec, const AmbientLossFactor<Exec>& f,
                       const Tensor4<float, Exec>& D, const Tensor4<const float, Exec>& x0) {
  Kokkos::parallel_for(
      "dmis::train::loss_mask", Kokkos::RangePolicy<Exec>(exec, 0, D.span()), KOKKOS_LAMBDA(size_t r) {
        D.data()[r] = x0.data()[r] + f(r) * (D.data()[r] - x0.data()[r]);
      });
}

// backward: dD *= r
template <class Exec>
void apply_loss_factor_backward(const Exec& exec, const AmbientLossFactor<Exec>& f,
                                const Tensor4<float, Exec>& dD) {
  Kokkos::parallel_for(
      "dmis::train::loss_mask_bwd", Kokkos::RangePolicy<Exec>(exec, 0, dD.span()),
      KOKKOS_LAMBDA(size_t r) { dD.data()[r] *= f(r); });
}
}  // namespace

template <class Exec>
EdmTrainStep<Exec>::EdmTrainStep(const models::UNetConfig& net, const TrainStepConfig& cfg,
                                 int local_batch, double conv_scratch_mb)
    : m_cfg(cfg), m_batch(local_batch), m_net(net), m_store(m_net.table()) {
  if (local_batch <= 0) throw InputError(cat("batch size must be > 0, got ", local_batch));
  m_net.prepare(local_batch, conv_scratch_mb);
  const size_t B = local_batch;
  const size_t n = B * net.in_channels * net.resolution * net.resolution;
  const size_t nout = B * net.out_channels * net.resolution * net.resolution;
  m_sigma = buffer<Exec>("sigma", B);
  m_weight = buffer<Exec>("loss_weight", B);
  m_c_noise = buffer<Exec>("c_noise", B);
  m_per_sample = buffer<Exec>("per_sample_loss", B);
  m_loss = buffer<Exec>("loss", 1);
  m_norm2 = buffer<Exec>("grad_norm2", 1);
  m_norm_scratch = buffer<Exec>("grad_norm_scratch",
                                optim::Optimizer<Exec, T>::norm_scratch_size(m_store.size()));
  m_noise = buffer<Exec>("noise", nout);
  m_x_sigma = buffer<Exec>("x_sigma", nout);
  m_net_in = buffer<Exec>("net_in", n);
  m_D = buffer<Exec>("denoised", nout);
  m_dD = buffer<Exec>("denoised_grad", nout);
  m_labels = Buffer1<int, Exec>("dmis::train::labels", B);
  m_host_scalars = typename Buffer1<T, Exec>::HostMirror("dmis::train::host_scalars", 2);
  if (net.in_channels < net.out_channels)
    throw InputError(cat("EDM training denoises the image itself: in_channels (", net.in_channels,
                         ") must be out_channels (", net.out_channels,
                         ") plus any conditioning channels"));
}

template <class Exec>
void EdmTrainStep<Exec>::initialize(models::InitScheme scheme) {
  Exec exec;
  models::init_params<Exec, T>(exec, m_net.config(), m_net.table(), m_store.params, m_cfg.seed,
                               scheme);
  using Opt = optim::Optimizer<Exec, T>;
  Opt::fill(exec, m_store.grads, T(0));
  Opt::fill(exec, m_store.adam_m, T(0));
  Opt::fill(exec, m_store.adam_v, T(0));
  Opt::copy(exec, m_store.params, m_store.ema);
  m_step = 0;
  exec.fence();
}

template <class Exec>
double EdmTrainStep<Exec>::learning_rate(long step) const {
  const double nimg = static_cast<double>(step) * global_batch();
  const double ramp = m_cfg.lr_rampup_kimg > 0 ? std::min(1.0, nimg / (m_cfg.lr_rampup_kimg * 1e3)) : 1.0;
  return m_cfg.opt.lr * ramp;
}

template <class Exec>
double EdmTrainStep<Exec>::ema_beta(long step) const {
  if (m_cfg.ema_decay > 0) return m_cfg.ema_decay;
  double halflife = m_cfg.ema_halflife_kimg * 1e3;
  if (m_cfg.ema_rampup_ratio > 0)
    halflife = std::min(halflife, static_cast<double>(step) * global_batch() * m_cfg.ema_rampup_ratio);
  return std::pow(0.5, global_batch() / std::max(halflife, 1e-8));
}

template <class Exec>
void EdmTrainStep<Exec>::begin(const Exec& exec) {
  optim::Optimizer<Exec, T>::fill(exec, m_store.grads, T(0));
}

template <class Exec>
void EdmTrainStep<Exec>::drop_labels(const Exec& exec, const Tensor1<const int, Exec>& labels,
                                     const Tensor1<int, Exec>& out) const {
  kernels::expect_shape("dmis::train::drop_labels", "labels", labels, {m_batch});
  kernels::expect_shape("dmis::train::drop_labels", "out", out, {m_batch});
  const rng::Philox gen(m_cfg.seed, rng::kLabelDrop);
  const T p = T(m_cfg.p_uncond);
  const int K = m_net.config().classes;
  const uint32_t step = static_cast<uint32_t>(m_step);
  const rng::SampleIds ids = m_cfg.ids();
  Kokkos::parallel_for(
      "dmis::train::label_dropout", Kokkos::RangePolicy<Exec>(exec, 0, m_batch), KOKKOS_LAMBDA(int b) {
        out(b) = rng::uniform<T>(gen, step, ids(b), 0u) < p ? K : labels(b);
      });
}

template <class Exec>
Tensor4<float, Exec> EdmTrainStep<Exec>::x_sigma() const {
  const auto& nc = m_net.config();
  return X(m_x_sigma.data(), m_batch, nc.out_channels, nc.resolution, nc.resolution);
}

template <class Exec>
void EdmTrainStep<Exec>::sample_inputs(const Exec& exec, const Tensor4<const T, Exec>& x0,
                                       const Tensor4<const T, Exec>& mask,
                                       const Tensor4<const T, Exec>& cond) {
  const auto& nc = m_net.config();
  const int B = m_batch, C = nc.out_channels, R = nc.resolution;
  const char* op = "dmis::train::step";
  kernels::expect_shape(op, "x0", x0, {B, C, R, R});
  const bool masked = mask.extent(0) > 0, conditional = cond.extent(0) > 0;
  const int Cc = conditional ? static_cast<int>(cond.extent(1)) : 0;
  kernels::expect(!(masked && conditional), op, "an input mask or conditioning channels, not both");
  kernels::expect(nc.in_channels == C + (masked ? 1 : 0) + Cc, op,
                  cat("the network takes ", nc.in_channels, " input channels; the image has ", C,
                      masked ? ", the mask 1" : "", conditional ? cat(", the condition ", Cc) : ""));
  if (conditional) kernels::expect_shape(op, "cond", cond, {B, Cc, R, R});
  using Edm = diffusion::Edm<Exec, T>;
  const X noise(m_noise.data(), B, C, R, R), xs(m_x_sigma.data(), B, C, R, R);
  Edm::sample_training_noise(exec, m_cfg.edm, m_cfg.seed, static_cast<uint32_t>(m_step),
                             m_cfg.ids(), m_sigma, noise);
  if (conditional) {  // net_in = [c_in x_sigma, cond]; the scaled input goes through the D buffer
    const X scaled(m_D.data(), B, C, R, R);
    Edm::prepare_training_inputs(exec, m_cfg.edm, x0, m_sigma, noise, xs, scaled, m_c_noise,
                                 m_weight);
    kernels::Concat<Exec, T>::forward(exec, scaled, cond, X(m_net_in.data(), B, C + Cc, R, R));
    return;
  }
  m_input_mask = Tensor4<const T, Exec>();
  if (!masked) {
    Edm::prepare_training_inputs(exec, m_cfg.edm, x0, m_sigma, noise, xs,
                                 X(m_net_in.data(), B, C, R, R), m_c_noise, m_weight);
    return;
  }
  // Ambient: x_sigma = mask * (x0 + sigma n), net_in = [c_in x_sigma, mask]; the unmasked
  // scaled input goes to the D buffer, which is free until the forward pass
  Edm::prepare_training_inputs(exec, m_cfg.edm, x0, m_sigma, noise, xs,
                               X(m_D.data(), B, C, R, R), m_c_noise, m_weight);
  Edm::masked_input(exec, m_cfg.edm, xs, mask, m_sigma, xs, X(m_net_in.data(), B, C + 1, R, R),
                    m_c_noise);
  m_input_mask = mask;  // the denoiser's output scaling depends on it (Edm::denoise)
}

template <class Exec>
void EdmTrainStep<Exec>::generative_loss(const Exec& exec, const Tensor4<const T, Exec>& x0,
                                         const Tensor1<const int, Exec>& labels,
                                         const Tensor1<const T, Exec>& w,
                                         const Tensor4<const T, Exec>& rest, T scale,
                                         const Tensor4<const T, Exec>& loss_mask) {
  const auto& nc = m_net.config();
  const int B = m_batch, C = nc.out_channels, Cin = nc.in_channels, R = nc.resolution;
  const char* op = "dmis::train::generative_loss";
  kernels::expect_shape(op, "labels", labels, {B});
  const bool mixed = w.extent(0) != 0;
  if (mixed) {
    kernels::expect_shape(op, "w", w, {B});
    kernels::expect_shape(op, "rest", rest, {B, C, R, R});
  }
  const bool masked_loss = loss_mask.extent(0) != 0;
  if (masked_loss) kernels::expect_shape(op, "loss_mask", loss_mask, {B, 1, R, R});
  using Edm = diffusion::Edm<Exec, T>;
  const X xs(m_x_sigma.data(), B, C, R, R), net_in(m_net_in.data(), B, Cin, R, R),
      D(m_D.data(), B, C, R, R), dD(m_dD.data(), B, C, R, R);
  const models::UNetIO<Exec, T> io{net_in, m_c_noise, labels};
  const models::DropoutKey key{m_cfg.seed, static_cast<uint32_t>(m_step), m_cfg.ids()};
  m_net.forward(exec, m_store.params, io, /*train=*/true, key);
  Edm::denoise(exec, m_cfg.edm, m_net.output(), xs, m_sigma, D, m_input_mask);
  const int n = C * R * R;
  if (mixed) {  // D_bar = w D + rest
    Kokkos::parallel_for(
        "dmis::train::mix", Kokkos::RangePolicy<Exec>(exec, 0, static_cast<size_t>(B) * n),
        KOKKOS_LAMBDA(size_t r) {
          const int b = static_cast<int>(r / n);
          (&D(b, 0, 0, 0))[r % n] = w(b) * (&D(b, 0, 0, 0))[r % n] + (&rest(b, 0, 0, 0))[r % n];
        });
  }
  // Ambient: the loss sees observed pixels only, with unit weight on F where the input hid them
  const AmbientLossFactor<Exec> factor{loss_mask, m_input_mask, sigma(), T(m_cfg.edm.sigma_data),
                                       m_cfg.hidden_unit_weight, R * R, n};
  if (masked_loss) apply_loss_factor(exec, factor, D, x0);
  kernels::MSE<Exec, T>::forward(exec, D, x0, m_weight, m_per_sample, m_loss);
  // The loss is a mean over the global batch: each rank's share is B_local / B_global.
  const T dloss = scale * T(static_cast<double>(B) / global_batch());
  kernels::MSE<Exec, T>::backward(exec, dloss, D, x0, m_weight, dD, GradMode::Overwrite);
  if (masked_loss) apply_loss_factor_backward(exec, factor, dD);  // dD/dD_net
  if (mixed) {  // only the first term carries a gradient: dD = w dD_bar
    Kokkos::parallel_for(
        "dmis::train::mix_bwd", Kokkos::RangePolicy<Exec>(exec, 0, static_cast<size_t>(B) * n),
        KOKKOS_LAMBDA(size_t r) {
          const int b = static_cast<int>(r / n);
          (&dD(b, 0, 0, 0))[r % n] *= w(b);
        });
  }
  const X dF(m_D.data(), B, C, R, R);  // D is no longer needed: reuse it for dF
  Edm::denoise_backward(exec, m_cfg.edm, dD, m_sigma, dF, m_input_mask);
  m_net.backward(exec, m_store.params, io, dF, m_store.grads, key);
}

template <class Exec>
void EdmTrainStep<Exec>::finish(const Exec& exec) {
  using Opt = optim::Optimizer<Exec, T>;
  if (on_gradients) on_gradients(exec, m_store.grads);
  ++m_step;
  Opt::grad_norm2(exec, m_store.grads, m_norm_scratch, m_norm2);
  Opt::adamw(exec, m_cfg.opt, learning_rate(m_step), m_step, m_store.params, m_store.grads,
             m_store.adam_m, m_store.adam_v, m_norm2);
  Opt::ema_update(exec, ema_beta(m_step), m_store.params, m_store.ema);
}

template <class Exec>
void EdmTrainStep<Exec>::run(const Exec& exec, const Tensor4<const T, Exec>& x0,
                             const Tensor1<const int, Exec>& labels) {
  begin(exec);
  drop_labels(exec, labels, m_labels);
  sample_inputs(exec, x0);
  generative_loss(exec, x0, m_labels, Tensor1<const T, Exec>(), Tensor4<const T, Exec>());
  finish(exec);
}

template <class Exec>
void EdmTrainStep<Exec>::read_scalars(double& loss, double& grad_norm) const {
  Kokkos::fence();
  Kokkos::deep_copy(Kokkos::subview(m_host_scalars, Kokkos::make_pair(0, 1)), m_loss);
  Kokkos::deep_copy(Kokkos::subview(m_host_scalars, Kokkos::make_pair(1, 2)), m_norm2);
  loss = m_host_scalars(0);
  grad_norm = std::sqrt(static_cast<double>(m_host_scalars(1)));
}

template <class Exec>
double EdmTrainStep<Exec>::flops_per_step() const {
  return m_batch * (m_net.forward_flops_per_sample() + m_net.backward_flops_per_sample());
}

// float only: one instantiation per execution space
#define DMIS_INST(E, T) DMIS_INST_##T(E)
#define DMIS_INST_float(E) template class EdmTrainStep<E>;
#define DMIS_INST_double(E)
DMIS_FOR_EACH_EXEC_AND_SCALAR(DMIS_INST)
#undef DMIS_INST

}  // namespace dmis::methods

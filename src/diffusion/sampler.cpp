#include "diffusion/sampler.hpp"

#include <algorithm>
#include <cmath>
#include <memory>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "kernels/common.hpp"
#include "kernels/eti.hpp"
#include "kernels/tensor_ops.hpp"

namespace dmis::diffusion {

using kernels::expect_shape;

std::vector<double> edm_sigmas(const SamplerConfig& cfg) {
  if (cfg.steps < 1)
    throw InputError(cat("sampler: steps must be at least 1 (found ", cfg.steps, ")"));
  if (!(cfg.sigma_min > 0))
    throw InputError(cat("sampler: sigma_min must be > 0 (found ", cfg.sigma_min, ")"));
  if (!(cfg.sigma_max > cfg.sigma_min))
    throw InputError(cat("sampler: sigma_max must be > sigma_min = ", cfg.sigma_min, " (found ",
                         cfg.sigma_max, ")"));
  if (!(cfg.rho > 0))
    throw InputError(cat("sampler: rho must be > 0 (found ", cfg.rho, ")"));
  if (!(cfg.churn >= 0))
    throw InputError(cat("sampler: churn must be >= 0 (found ", cfg.churn, ")"));
  if (!(cfg.guidance >= 0))
    throw InputError(cat("sampler: guidance must be >= 0 (found ", cfg.guidance, ")"));
  const int N = cfg.steps;
  std::vector<double> s(N + 1);
  const double a = std::pow(cfg.sigma_max, 1 / cfg.rho), b = std::pow(cfg.sigma_min, 1 / cfg.rho);
  for (int i = 0; i < N; ++i)
    s[i] = N == 1 ? cfg.sigma_max : std::pow(a + double(i) / (N - 1) * (b - a), cfg.rho);
  if (N > 1) { // the ends exactly, not through pow(pow(x, 1/rho), rho)
    s[0] = cfg.sigma_max;
    s[N - 1] = cfg.sigma_min;
  }
  s[N] = 0;
  return s;
}

namespace {

/// x (B, C, H, W) = (overwrite ? 0 : x) + scale * z with z ~ N(0, I) keyed by
/// (element pair, sample_offset + b, stage, 0) of `gen`.
template <class Exec>
void add_noise(const Exec& exec, const rng::Philox& gen, uint32_t stage, uint32_t sample_offset,
               float scale, bool overwrite, const Tensor4<float, Exec>& x) {
  const int B = x.extent(0);
  const int n = x.extent(1) * x.extent(2) * x.extent(3);
  const int pairs = (n + 1) / 2;
  Kokkos::parallel_for(
      overwrite ? "dmis::sampler::initial_noise" : "dmis::sampler::churn",
      Kokkos::RangePolicy<Exec>(exec, 0, static_cast<size_t>(B) * pairs), KOKKOS_LAMBDA(size_t r) {
        const int b = static_cast<int>(r / pairs), k = static_cast<int>(r % pairs);
        const rng::Counter c = gen.bits(static_cast<uint32_t>(k), sample_offset + b, stage, 0u);
        float z0, z1;
        rng::normal2<float>(c.v[0], c.v[1], z0, z1);
        float* dst = &x(b, 0, 0, 0);
        dst[2 * k] = (overwrite ? 0.0f : dst[2 * k]) + scale * z0;
        if (2 * k + 1 < n)
          dst[2 * k + 1] = (overwrite ? 0.0f : dst[2 * k + 1]) + scale * z1;
      });
}

/// v (n) = value everywhere.
template <class Exec, class V>
void fill(const Exec& exec, const char* label, const Tensor1<V, Exec>& v, V value) {
  Kokkos::parallel_for(
      label, Kokkos::RangePolicy<Exec>(exec, 0, v.extent(0)),
      KOKKOS_LAMBDA(size_t i) { v(i) = value; });
}

/// Classifier-free guidance: D (n) = Du + w (D - Du), D holding the conditional output.
template <class Exec>
void guide(const Exec& exec, float w, const Tensor1<const float, Exec>& Du,
           const Tensor1<float, Exec>& D) {
  Kokkos::parallel_for(
      "dmis::sampler::guidance", Kokkos::RangePolicy<Exec>(exec, 0, D.extent(0)),
      KOKKOS_LAMBDA(size_t i) { D(i) = Du(i) + w * (D(i) - Du(i)); });
}

/// D (n) clamped to the data range [-1, 1] (the reference Ambient sampler's static clipping).
template <class Exec>
void clip_unit(const Exec& exec, const Tensor1<float, Exec>& D) {
  Kokkos::parallel_for(
      "dmis::sampler::clip_denoised", Kokkos::RangePolicy<Exec>(exec, 0, D.extent(0)),
      KOKKOS_LAMBDA(size_t i) { D(i) = D(i) < -1.f ? -1.f : D(i) > 1.f ? 1.f : D(i); });
}

} // namespace

template <class Exec>
HeunSampler<Exec>::HeunSampler(int B, int C, int H, int W) : m_B(B), m_C(C), m_H(H), m_W(W) {
  if (B < 1 || C < 1 || H < 1 || W < 1)
    throw ShapeError(cat("dmis::sampler: batch and image extents must be positive (found B=", B,
                         ", C=", C, ", H=", H, ", W=", W, ")"));
  const size_t n = static_cast<size_t>(B) * C * H * W;
  m_xnext = Buffer1<T, Exec>("dmis::sampler::x_next", n);
  m_d = Buffer1<T, Exec>("dmis::sampler::d", n);
  m_D = Buffer1<T, Exec>("dmis::sampler::D", n);
  m_Du = Buffer1<T, Exec>("dmis::sampler::D_uncond", n);
  m_sigma = Buffer1<T, Exec>("dmis::sampler::sigma", B);
  m_uncond = Buffer1<int, Exec>("dmis::sampler::uncond_labels", B);
}

template <class Exec> int HeunSampler<Exec>::denoiser_calls(const SamplerConfig& cfg) {
  return (2 * cfg.steps - 1) * (cfg.guidance != 1 ? 2 : 1);
}

template <class Exec>
void HeunSampler<Exec>::evaluate(const Exec& exec, const SamplerConfig& cfg,
                                 const Denoiser<Exec>& denoiser, const Tensor4<const T, Exec>& x,
                                 double sigma_value, const Tensor1<const int, Exec>& labels) {
  // kernels come from free functions: CUDA forbids device lambdas in private member functions
  const int B = m_B;
  const size_t n = static_cast<size_t>(B) * m_C * m_H * m_W;
  const Tensor1<T, Exec> sigma(m_sigma.data(), B);
  fill(exec, "dmis::sampler::fill_sigma", sigma, static_cast<T>(sigma_value));
  denoiser(exec, x, sigma, labels, X(m_D.data(), B, m_C, m_H, m_W));
  if (cfg.guidance != 1) {
    denoiser(exec, x, sigma, Tensor1<const int, Exec>(m_uncond.data(), B),
             X(m_Du.data(), B, m_C, m_H, m_W));
    guide(exec, static_cast<T>(cfg.guidance), Tensor1<const T, Exec>(m_Du.data(), n),
          Tensor1<T, Exec>(m_D.data(), n));
  }
  if (cfg.clip_denoised)
    clip_unit(exec, Tensor1<T, Exec>(m_D.data(), n));
}

template <class Exec>
void HeunSampler<Exec>::run(const Exec& exec, const SamplerConfig& cfg,
                            const Denoiser<Exec>& denoiser, const Tensor1<const int, Exec>& labels,
                            int uncond_label, uint32_t sample_offset, const X& out) {
  const char* op = "dmis::sampler::run";
  const std::vector<double> sig = edm_sigmas(cfg); // validates cfg
  expect_shape(op, "out", out, {m_B, m_C, m_H, m_W});
  expect_shape(op, "labels", labels, {m_B});
  if (!denoiser)
    throw Error(cat(op, ": no denoiser given"));
  const int N = cfg.steps, B = m_B;
  const size_t n = static_cast<size_t>(B) * m_C * m_H * m_W;
  const rng::Philox gen(cfg.seed, rng::kSampler);

  if (cfg.guidance != 1)
    fill(exec, "dmis::sampler::fill_labels", Tensor1<int, Exec>(m_uncond.data(), B), uncond_label);
  // x_0 = sigma_0 n, kept in `out` from here on
  add_noise(exec, gen, 0u, sample_offset, static_cast<T>(sig[0]), true, out);

  const Tensor4<const T, Exec> x(out.data(), B, m_C, m_H, m_W);
  const Tensor4<const T, Exec> xnext_c(m_xnext.data(), B, m_C, m_H, m_W);
  T* xo = out.data();
  T* xn = m_xnext.data();
  T* dv = m_d.data();
  const T* Dv = m_D.data();
  const double gamma_max = std::min(cfg.churn / N, std::sqrt(2.0) - 1);
  for (int i = 0; i < N; ++i) {
    const double s_cur = sig[i], s_next = sig[i + 1];
    const double gamma = (cfg.s_tmin <= s_cur && s_cur <= cfg.s_tmax) ? gamma_max : 0.0;
    const double s_hat = s_cur * (1 + gamma);
    // x_hat = x_i + sqrt(sigma_hat^2 - sigma_i^2) S_noise eps_i, in place
    if (gamma > 0)
      add_noise(exec, gen, static_cast<uint32_t>(i + 1), sample_offset,
                static_cast<T>(std::sqrt(s_hat * s_hat - s_cur * s_cur) * cfg.s_noise), false, out);
    evaluate(exec, cfg, denoiser, x, s_hat, labels);
    const T sh = static_cast<T>(s_hat), sn = static_cast<T>(s_next);
    const T h = static_cast<T>(s_next - s_hat);
    if (s_next == 0) { // last step: Euler, x_N = x_hat + (0 - sigma_hat) d
      Kokkos::parallel_for(
          "dmis::sampler::euler_last", Kokkos::RangePolicy<Exec>(exec, 0, n),
          KOKKOS_LAMBDA(size_t k) { xo[k] = xo[k] + h * ((xo[k] - Dv[k]) / sh); });
      continue;
    }
    Kokkos::parallel_for(
        "dmis::sampler::euler", Kokkos::RangePolicy<Exec>(exec, 0, n), KOKKOS_LAMBDA(size_t k) {
          const T d = (xo[k] - Dv[k]) / sh;
          dv[k] = d;
          xn[k] = xo[k] + h * d;
        });
    evaluate(exec, cfg, denoiser, xnext_c, s_next, labels);
    Kokkos::parallel_for(
        "dmis::sampler::heun", Kokkos::RangePolicy<Exec>(exec, 0, n), KOKKOS_LAMBDA(size_t k) {
          const T d2 = (xn[k] - Dv[k]) / sn;
          xo[k] = xo[k] + h * (T(0.5) * dv[k] + T(0.5) * d2);
        });
  }
}

namespace {

/// The one UNet denoiser behind unet_denoiser, ambient_denoiser and conditional_denoiser: the
/// network input is [c_in(sigma) x] (plain), [c_in(sigma) A x, A] (mask A: Ambient) or
/// [c_in(sigma) x, cond] (DiffEM's posterior); D = Edm::denoise of the network output, with the
/// mask where there is one. Scratch is allocated here, once; the callback allocates nothing.
template <class Exec>
Denoiser<Exec> make_denoiser(const char* op, models::UNet<Exec, float>& net,
                             const Tensor1<const float, Exec>& params, const EdmConfig& edm,
                             const Tensor4<const float, Exec>& mask,
                             const Tensor4<const float, Exec>& cond) {
  const models::UNetConfig& nc = net.config();
  const int B = net.batch(), C = nc.out_channels, R = nc.resolution;
  const bool masked = mask.data() != nullptr, conditional = cond.data() != nullptr;
  const int extra = masked ? 1 : conditional ? static_cast<int>(cond.extent(1)) : 0;
  if (B == 0)
    throw Error(cat(op, ": the UNet must be prepared for the sampler's batch first"));
  if (nc.in_channels != C + extra) {
    if (masked)
      throw ShapeError(cat(op, ": the UNet takes ", nc.in_channels, " channels and returns ", C,
                           "; Ambient needs one mask channel more than it returns"));
    if (conditional)
      throw ShapeError(cat(op, ": the UNet takes ", nc.in_channels, " channels; the image has ",
                           C, " and the condition ", extra));
    throw ShapeError(cat(op, ": the UNet takes ", nc.in_channels, " channels but returns ", C,
                         "; D = c_skip x + c_out F needs them equal"));
  }
  if (masked)
    expect_shape(op, "mask", mask, {B, 1, R, R});
  if (conditional)
    expect_shape(op, "cond", cond, {B, extra, R, R});
  struct Scratch {
    Buffer1<float, Exec> net_in;  // (B, C + extra, R, R) the network's input
    Buffer1<float, Exec> image;   // (B, C, R, R): A x (Ambient) or c_in x (conditional)
    Buffer1<float, Exec> c_noise; // (B) ln(sigma) / 4
  };
  auto scratch = std::make_shared<Scratch>();
  scratch->net_in = Buffer1<float, Exec>("dmis::sampler::net_in",
                                         static_cast<size_t>(B) * (C + extra) * R * R);
  if (extra > 0)
    scratch->image =
        Buffer1<float, Exec>("dmis::sampler::image", static_cast<size_t>(B) * C * R * R);
  scratch->c_noise = Buffer1<float, Exec>("dmis::sampler::c_noise", B);
  models::UNet<Exec, float>* pnet = &net;
  return [pnet, params, edm, scratch, mask, cond, masked, conditional, B, C, extra, R,
          op](const Exec& exec, const Tensor4<const float, Exec>& x,
              const Tensor1<const float, Exec>& sigma, const Tensor1<const int, Exec>& labels,
              const Tensor4<float, Exec>& D) {
    expect_shape(op, "x", x, {B, C, R, R});
    const Tensor4<float, Exec> net_in(scratch->net_in.data(), B, C + extra, R, R);
    const Tensor4<float, Exec> image =
        extra > 0 ? Tensor4<float, Exec>(scratch->image.data(), B, C, R, R) : Tensor4<float, Exec>();
    const Tensor1<float, Exec> c_noise(scratch->c_noise.data(), B);
    Tensor4<const float, Exec> skip = x; // the x of D's skip term
    if (masked) {
      Edm<Exec, float>::masked_input(exec, edm, x, mask, sigma, image, net_in, c_noise);
      skip = image;
    } else if (conditional) {
      Edm<Exec, float>::scale_input(exec, edm, x, sigma, image, c_noise);
      kernels::Concat<Exec, float>::forward(exec, image, cond, net_in);
    } else {
      Edm<Exec, float>::scale_input(exec, edm, x, sigma, net_in, c_noise);
    }
    pnet->forward(exec, params,
                  models::UNetIO<Exec, float>{Tensor4<const float, Exec>(net_in),
                                              Tensor1<const float, Exec>(c_noise), labels},
                  false);
    Edm<Exec, float>::denoise(exec, edm, Tensor4<const float, Exec>(pnet->output()), skip, sigma,
                              D, mask);
  };
}

} // namespace

template <class Exec>
Denoiser<Exec> unet_denoiser(models::UNet<Exec, float>& net,
                             const Tensor1<const float, Exec>& params, const EdmConfig& edm) {
  return make_denoiser<Exec>("dmis::sampler::unet_denoiser", net, params, edm, {}, {});
}

template <class Exec>
Denoiser<Exec> ambient_denoiser(models::UNet<Exec, float>& net,
                                const Tensor1<const float, Exec>& params, const EdmConfig& edm,
                                const Tensor4<const float, Exec>& mask) {
  if (mask.data() == nullptr)
    throw Error("dmis::sampler::ambient_denoiser: no mask given");
  return make_denoiser<Exec>("dmis::sampler::ambient_denoiser", net, params, edm, mask, {});
}

template <class Exec>
Denoiser<Exec> conditional_denoiser(models::UNet<Exec, float>& net,
                                    const Tensor1<const float, Exec>& params, const EdmConfig& edm,
                                    const Tensor4<const float, Exec>& cond) {
  if (cond.data() == nullptr)
    throw Error("dmis::sampler::conditional_denoiser: no condition given");
  return make_denoiser<Exec>("dmis::sampler::conditional_denoiser", net, params, edm, {}, cond);
}

template <class Exec>
void ambient_masks(const Exec& exec, uint64_t seed, double keep, uint32_t first_index,
                   const Tensor4<float, Exec>& mask) {
  const rng::Philox gen(seed, rng::kAmbient);
  const float drop = static_cast<float>(1.0 - keep);
  const int hw = static_cast<int>(mask.extent(2) * mask.extent(3));
  Kokkos::parallel_for(
      "dmis::sampler::ambient_masks", Kokkos::RangePolicy<Exec>(exec, 0, mask.span()),
      KOKKOS_LAMBDA(size_t r) {
        const uint32_t b = static_cast<uint32_t>(r / hw), p = static_cast<uint32_t>(r % hw);
        // round 1: the training masks use round 0 of the same stream
        mask.data()[r] = rng::uniform<float>(gen, 1u, first_index + b, p) >= drop ? 1.f : 0.f;
      });
}

#define DMIS_INST(E, T) DMIS_INST_##T(E)
#define DMIS_INST_float(E)                                                                         \
  template Denoiser<E> ambient_denoiser<E>(models::UNet<E, float>&,                                \
                                           const Tensor1<const float, E>&, const EdmConfig&,       \
                                           const Tensor4<const float, E>&);                        \
  template Denoiser<E> conditional_denoiser<E>(models::UNet<E, float>&,                            \
                                               const Tensor1<const float, E>&, const EdmConfig&,   \
                                               const Tensor4<const float, E>&);                    \
  template void ambient_masks<E>(const E&, uint64_t, double, uint32_t, const Tensor4<float, E>&);  \
  template class HeunSampler<E>;                                                                   \
  template Denoiser<E> unet_denoiser<E>(models::UNet<E, float>&, const Tensor1<const float, E>&,   \
                                        const EdmConfig&);
#define DMIS_INST_double(E)
DMIS_FOR_EACH_EXEC_AND_SCALAR(DMIS_INST)
#undef DMIS_INST

} // namespace dmis::diffusion

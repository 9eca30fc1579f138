#include "methods/classifier.hpp"

#include <cmath>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "kernels/common.hpp"
#include "kernels/eti.hpp"

namespace dmis::methods {

double normal_quantile(double p) {
  if (!(p > 0 && p < 1)) throw Error(cat("normal_quantile: p must be in (0, 1), got ", p));
  // Acklam's rational approximation with one Newton step (Halley) on erfc.
  static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                             1.383577518672690e+02,  -3.066479806614716e+01, 2.506628277459239e+00};
  static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                             6.680131188771972e+01,  -1.328068155288572e+01};
  static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                             -2.549732539343734e+00, 4.374664141464968e+00,  2.938163982698783e+00};
  static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                             3.754408661907416e+00};
  double x;
  if (p < 0.02425) {
    const double q = std::sqrt(-2 * std::log(p));
    x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  } else if (p > 1 - 0.02425) {
    const double q = std::sqrt(-2 * std::log(1 - p));
    x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  } else {
    const double q = p - 0.5, r = q * q;
    x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
        (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
  }
  const double e = 0.5 * std::erfc(-x / std::sqrt(2.0)) - p;
  const double u = e * std::sqrt(2 * M_PI) * std::exp(x * x / 2);
  return x - u / (1 + x * u / 2);
}

double resolved_logit_scale(double logit_scale, const models::UNetConfig& net) {
  if (logit_scale < 0) throw InputError(cat("logit scale must be >= 0 (0: the pixel count), got ", logit_scale));
  return logit_scale > 0 ? logit_scale
                         : static_cast<double>(net.out_channels) * net.resolution * net.resolution;
}

void dmis_window(double P_mean, double width, double& l, double& r) {
  // F(l) + F(r) = 1 for the log-normal means ln l + ln r = 2 P_mean, with r = l + width.
  l = (-width + std::sqrt(width * width + 4 * std::exp(2 * P_mean))) / 2;
  r = l + width;
}

void classifier_levels(const ClassifierConfig& cfg, std::vector<double>& sigma,
                       std::vector<double>& weight) {
  const int K = cfg.points;
  if (K < 1) throw InputError(cat("classifier points must be >= 1, got ", K));
  const double Pm = cfg.edm.P_mean, Ps = cfg.edm.P_std, sd = cfg.edm.sigma_data;
  auto lambda = [&](double s) { return (s * s + sd * sd) / ((s * sd) * (s * sd)); };
  auto cdf = [](double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); };
  sigma.assign(K, 0);
  weight.assign(K, 0);
  if (!cfg.sigmas.empty()) {
    if (static_cast<int>(cfg.sigmas.size()) != K)
      throw InputError(cat("classifier: ", cfg.sigmas.size(), " sigmas given for ", K, " points"));
    for (int k = 0; k < K; ++k) sigma[k] = cfg.sigmas[k], weight[k] = lambda(cfg.sigmas[k]) / K;
  } else if (cfg.fixed_sigma > 0) {
    for (int k = 0; k < K; ++k) sigma[k] = cfg.fixed_sigma, weight[k] = lambda(cfg.fixed_sigma) / K;
  } else if (cfg.timesteps == ClassifierLevels::Window) {
    double l, r;
    dmis_window(Pm, cfg.window, l, r);
    const double Fa = cdf((std::log(l) - Pm) / Ps), Fb = cdf((std::log(r) - Pm) / Ps);
    for (int k = 0; k < K; ++k) {
      const double q = Fa + (k + 0.5) / K * (Fb - Fa);
      sigma[k] = std::exp(Pm + Ps * normal_quantile(q));
      weight[k] = lambda(sigma[k]) / K;
    }
  } else {
    if (!(cfg.uniform_max > cfg.uniform_min))
      throw InputError(cat("classify.uniform_max (", cfg.uniform_max, ") must exceed ",
                           cfg.uniform_min));
    const double step = K > 1 ? (cfg.uniform_max - cfg.uniform_min) / (K - 1)
                              : cfg.uniform_max - cfg.uniform_min;
    for (int k = 0; k < K; ++k) {
      sigma[k] = K > 1 ? cfg.uniform_min + k * step : 0.5 * (cfg.uniform_min + cfg.uniform_max);
      const double z = (std::log(sigma[k]) - Pm) / Ps;
      const double pdf = std::exp(-z * z / 2) / (sigma[k] * Ps * std::sqrt(2 * M_PI));
      weight[k] = cfg.equal_weights ? lambda(sigma[k]) / K : lambda(sigma[k]) * pdf * step;
    }
  }
}


namespace {
template <class Exec>
Buffer1<float, Exec> buf(const char* name, size_t n) {
  return Buffer1<float, Exec>(std::string("dmis::classifier::") + name, n);
}
}  // namespace

template <class Exec>
DiffusionClassifier<Exec>::DiffusionClassifier(const models::UNetConfig& net,
                                               const ClassifierConfig& cfg, int B, int NC,
                                               bool inference_only, double conv_scratch_mb)
    : m_cfg(cfg), m_B(B), m_NC(NC), m_K(cfg.points), m_net(net) {
  if (B < 1 || NC < 1) throw InputError(cat("classifier batch ", B, " x ", NC, " classes is empty"));
  m_cfg.logit_scale = resolved_logit_scale(cfg.logit_scale, net);
  const int J = B * NC * m_K;
  m_net.prepare(J, conv_scratch_mb, inference_only);
  std::vector<double> s, w;
  classifier_levels(cfg, s, w);
  m_sigma_k = buf<Exec>("sigma_k", m_K);
  m_weight_k = buf<Exec>("weight_k", m_K);
  auto hs = Kokkos::create_mirror_view(m_sigma_k);
  auto hw = Kokkos::create_mirror_view(m_weight_k);
  for (int k = 0; k < m_K; ++k) hs(k) = static_cast<T>(s[k]), hw(k) = static_cast<T>(w[k]);
  Kokkos::deep_copy(m_sigma_k, hs);
  Kokkos::deep_copy(m_weight_k, hw);
  const size_t n = static_cast<size_t>(net.in_channels) * net.resolution * net.resolution;
  m_sigma = buf<Exec>("sigma", J);
  m_c_noise = buf<Exec>("c_noise", J);
  m_err = buf<Exec>("errors", J);
  m_seen = buf<Exec>("seen_values", J);
  m_xin = buf<Exec>("net_in", J * n);
  m_xs = buf<Exec>("x_noisy", J * n);
  m_D = buf<Exec>("denoised", J * n);
  m_labels = Buffer1<int, Exec>("dmis::classifier::labels", J);
  m_logits_buf = Kokkos::View<T**, Kokkos::LayoutRight, DeviceOf<Exec>>("dmis::classifier::logits", B, NC);
  m_logits = Tensor2<T, Exec>(m_logits_buf.data(), B, NC);
}

template <class Exec>
void DiffusionClassifier<Exec>::forward(const Exec& exec, const Tensor1<const T, Exec>& params,
                                        const Tensor4<const T, Exec>& x0,
                                        const Tensor2<const int, Exec>& classes,
                                        const Tensor1<const T, Exec>& log_prior, uint64_t seed,
                                        uint32_t step, rng::SampleIds ids,
                                        const Tensor4<const T, Exec>& mask) {
  const auto& nc = m_net.config();
  const int B = m_B, NC = m_NC, K = m_K, C = nc.out_channels, Cin = nc.in_channels, R = nc.resolution;
  const char* op = "dmis::classifier::forward";
  kernels::expect_shape(op, "x0", x0, {B, C, R, R});
  const bool masked = Cin == C + 1;
  kernels::expect(masked == (mask.extent(0) > 0), op,
                  masked ? "the network takes a mask channel: pass the pixel masks"
                         : "pixel masks need a network with a mask channel");
  if (masked) kernels::expect_shape(op, "mask", mask, {B, 1, R, R});
  m_mask = mask;
  kernels::expect_shape(op, "classes", classes, {B, NC});
  const bool with_prior = log_prior.extent(0) != 0;
  if (with_prior) kernels::expect_shape(op, "log_prior", log_prior, {nc.classes + 1});
  m_x0 = x0;
  noisy_inputs(exec, x0, classes, seed, step, ids, mask);
  const int J = B * NC * K;
  const Tensor4<T, Exec> xin(m_xin.data(), J, Cin, R, R), xs(m_xs.data(), J, C, R, R),
      D(m_D.data(), J, C, R, R);
  const models::UNetIO<Exec, T> io{xin, m_c_noise, m_labels};
  m_net.forward(exec, params, io, /*train=*/false);
  diffusion::Edm<Exec, T>::denoise(exec, m_cfg.edm, m_net.output(), xs, m_sigma, D);
  errors(exec, x0, mask);
  logits_from_errors(exec, classes, log_prior);
}

/// The network's inputs (J = B x NC x K): x0 + sigma_k eps_k (the same noise for every class of
/// an image at level k), masked where the network takes a mask, scaled by c_in; the mask
/// channel; sigma, c_noise and the class of every input.
template <class Exec>
void DiffusionClassifier<Exec>::noisy_inputs(const Exec& exec, const Tensor4<const T, Exec>& x0,
                                             const Tensor2<const int, Exec>& classes, uint64_t seed,
                                             uint32_t step, rng::SampleIds ids,
                                             const Tensor4<const T, Exec>& mask) {
  const auto& nc = m_net.config();
  const int NC = m_NC, K = m_K, C = nc.out_channels, Cin = nc.in_channels, R = nc.resolution, HW = R * R;
  const bool masked = Cin == C + 1;
  const int J = m_B * NC * K, n = C * R * R;
  const rng::Philox gen(seed, rng::kClassifier);
  const T sd = T(m_cfg.edm.sigma_data);
  const int first_draw = m_cfg.first_draw;
  auto sigma_k = m_sigma_k;
  auto sigma = m_sigma;
  auto c_noise = m_c_noise;
  auto labels = m_labels;
  const Tensor4<T, Exec> xin(m_xin.data(), J, Cin, R, R), xs(m_xs.data(), J, C, R, R),
      D(m_D.data(), J, C, R, R);
  Kokkos::parallel_for(
      "dmis::classifier::inputs", Kokkos::RangePolicy<Exec>(exec, 0, J), KOKKOS_LAMBDA(int j) {
        const int b = j / (NC * K), c = (j / K) % NC, k = j % K;
        const T s = sigma_k(k);
        const T c_in = T(1) / compat::sqrt(s * s + sd * sd);
        sigma(j) = s;
        c_noise(j) = compat::log(s) / T(4);
        labels(j) = classes(b, c);
        const T* a = &x0(b, 0, 0, 0);
        T* o = &xs(j, 0, 0, 0);
        T* q = &xin(j, 0, 0, 0);
        const T* m = masked ? &mask(b, 0, 0, 0) : nullptr;
        // the same noise for every class c of image b at level k
        for (int e = 0; e < n; e += 2) {
          const rng::Counter cnt =
              gen.bits(static_cast<uint32_t>((k + first_draw) * ((n + 1) / 2) + e / 2), ids(b), step, 0u);
          T z0, z1;
          rng::normal2<T>(cnt.v[0], cnt.v[1], z0, z1);
          o[e] = (masked ? m[e % HW] : T(1)) * (a[e] + s * z0);
          q[e] = c_in * o[e];
          if (e + 1 < n) {
            o[e + 1] = (masked ? m[(e + 1) % HW] : T(1)) * (a[e + 1] + s * z1);
            q[e + 1] = c_in * o[e + 1];
          }
        }
        if (masked)
          for (int p = 0; p < HW; ++p) q[n + p] = m[p];  // the mask channel
      });
}

/// err (J): the mean squared denoising error of every input over its (seen) values; seen (J):
/// how many values that mean is over.
template <class Exec>
void DiffusionClassifier<Exec>::errors(const Exec& exec, const Tensor4<const T, Exec>& x0,
                                       const Tensor4<const T, Exec>& mask) {
  const auto& nc = m_net.config();
  const int NC = m_NC, K = m_K, C = nc.out_channels, R = nc.resolution, HW = R * R;
  const int J = m_B * NC * K, n = C * R * R;
  const bool masked = nc.in_channels == C + 1;
  const Tensor4<const T, Exec> D(m_D.data(), J, C, R, R);
  using Policy = Kokkos::TeamPolicy<Exec>;
  Policy policy(exec, J, Kokkos::AUTO);
  policy.set_scratch_size(0, Kokkos::PerTeam(kernels::team_sum_scratch_bytes<T>()));
  auto err = m_err;
  auto seen = m_seen;
  Kokkos::parallel_for(
      "dmis::classifier::errors", policy, KOKKOS_LAMBDA(const typename Policy::member_type& team) {
        const int j = team.league_rank(), b = j / (NC * K);
        const T* d = &D(j, 0, 0, 0);
        const T* a = &x0(b, 0, 0, 0);
        if (!masked) {
          const T s = kernels::team_sum(team, n, kernels::team_partials<T>(team), [&](int i) {
            const T t = d[i] - a[i];
            return t * t;
          });
          Kokkos::single(Kokkos::PerTeam(team), [&]() { err(j) = s / T(n), seen(j) = T(n); });
          return;
        }
        const T* m = &mask(b, 0, 0, 0);
        T s = 0, cnt = 0;
        kernels::team_sum2(team, n, kernels::team_partials<T>(team),
                           [&](int i, T& sq, T& one) {
                             const T t = m[i % HW] * (d[i] - a[i]);
                             sq = t * t;
                             one = m[i % HW];
                           },
                           s, cnt);
        Kokkos::single(Kokkos::PerTeam(team), [&]() {
          const T c = cnt > T(0) ? cnt : T(1);
          err(j) = s / c, seen(j) = c;
        });
      });
}

/// logits (B, NC) = log prior - s sum_k w_k err_k.
template <class Exec>
void DiffusionClassifier<Exec>::logits_from_errors(const Exec& exec, const Tensor2<const int, Exec>& classes,
                                                   const Tensor1<const T, Exec>& log_prior) {
  const int B = m_B, NC = m_NC, K = m_K;
  const bool with_prior = log_prior.extent(0) != 0;
  auto err = m_err;
  auto weight_k = m_weight_k;
  auto logits = m_logits;
  const T scale = T(m_cfg.logit_scale);
  Kokkos::parallel_for(
      "dmis::classifier::logits", Kokkos::RangePolicy<Exec>(exec, 0, B * NC), KOKKOS_LAMBDA(int i) {
        const int b = i / NC, c = i % NC;
        T acc = 0;
        for (int k = 0; k < K; ++k) acc += weight_k(k) * err((b * NC + c) * K + k);
        logits(b, c) = (with_prior ? log_prior(classes(b, c)) : T(0)) - scale * acc;
      });
}

template <class Exec>
void DiffusionClassifier<Exec>::backward(const Exec& exec, const Tensor1<const T, Exec>& params,
                                         const Tensor2<const T, Exec>& dlogits,
                                         const Tensor1<T, Exec>& grads) {
  const auto& nc = m_net.config();
  const int B = m_B, NC = m_NC, K = m_K, C = nc.out_channels, Cin = nc.in_channels,
            R = nc.resolution, HW = R * R;
  kernels::expect_shape("dmis::classifier::backward", "dlogits", dlogits, {B, NC});
  const int J = B * NC * K, n = C * R * R;
  const Tensor4<T, Exec> D(m_D.data(), J, C, R, R), dF(m_xs.data(), J, C, R, R);
  const Tensor4<const T, Exec> x0 = m_x0, mask = m_mask;
  const bool masked = mask.extent(0) > 0;
  auto weight_k = m_weight_k;
  auto sigma = m_sigma;
  auto seen = m_seen;
  const T scale = T(m_cfg.logit_scale), sd = T(m_cfg.edm.sigma_data);
  // d logit / d err_j = -s w_k;  d err_j / dD = 2 m (D - x0) / seen_j;  dD / dF = c_out(sigma)
  Kokkos::parallel_for(
      "dmis::classifier::bwd_errors", Kokkos::RangePolicy<Exec>(exec, 0, J), KOKKOS_LAMBDA(int j) {
        const int b = j / (NC * K), c = (j / K) % NC, k = j % K;
        const T s = sigma(j);
        const T c_out = s * sd / compat::sqrt(s * s + sd * sd);
        const T g = -scale * weight_k(k) * dlogits(b, c) * T(2) / seen(j) * c_out;
        const T* d = &D(j, 0, 0, 0);
        const T* a = &x0(b, 0, 0, 0);
        T* o = &dF(j, 0, 0, 0);
        if (masked) {
          const T* m = &mask(b, 0, 0, 0);
          for (int i = 0; i < n; ++i) o[i] = g * m[i % HW] * (d[i] - a[i]);
        } else {
          for (int i = 0; i < n; ++i) o[i] = g * (d[i] - a[i]);
        }
      });
  const models::UNetIO<Exec, T> io{Tensor4<T, Exec>(m_xin.data(), J, Cin, R, R), m_c_noise, m_labels};
  m_net.backward(exec, params, io, dF, grads);
}

#define DMIS_INST(E, T) DMIS_INST_##T(E)
#define DMIS_INST_float(E) template class DiffusionClassifier<E>;
#define DMIS_INST_double(E)
DMIS_FOR_EACH_EXEC_AND_SCALAR(DMIS_INST)
#undef DMIS_INST

}  // namespace dmis::methods

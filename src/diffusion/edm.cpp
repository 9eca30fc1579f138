#include "diffusion/edm.hpp"

#include "core/rng.hpp"
#include "kernels/common.hpp"
#include "kernels/eti.hpp"

namespace dmis::diffusion {

using kernels::expect_shape;

template <class Exec, class T>
void Edm<Exec, T>::sample_training_noise(const Exec& exec, const EdmConfig& cfg, uint64_t seed,
                                         uint32_t step, rng::SampleIds ids, const V1& sigma,
                                         const X& noise) {
  const int B = noise.extent(0);
  const int n = noise.extent(1) * noise.extent(2) * noise.extent(3);
  expect_shape("dmis::edm::sample_training_noise", "sigma", sigma, {B});
  const rng::Philox gen_sigma(seed, rng::kTrainSigma), gen_noise(seed, rng::kTrainNoise);
  const T pm = T(cfg.P_mean), ps = T(cfg.P_std);
  Kokkos::parallel_for(
      "dmis::edm::sample_sigma", Kokkos::RangePolicy<Exec>(exec, 0, B), KOKKOS_LAMBDA(int b) {
        sigma(b) = compat::exp(pm + ps * rng::normal<T>(gen_sigma, step, ids(b), 0u));
      });
  const int pairs = (n + 1) / 2;
  Kokkos::parallel_for(
      "dmis::edm::sample_noise", Kokkos::RangePolicy<Exec>(exec, 0, static_cast<size_t>(B) * pairs),
      KOKKOS_LAMBDA(size_t r) {
        const int b = static_cast<int>(r / pairs), k = static_cast<int>(r % pairs);
        const rng::Counter c = gen_noise.bits(static_cast<uint32_t>(k), ids(b), step, 0u);
        T z0, z1;
        rng::normal2<T>(c.v[0], c.v[1], z0, z1);
        T* dst = &noise(b, 0, 0, 0);
        dst[2 * k] = z0;
        if (2 * k + 1 < n) dst[2 * k + 1] = z1;
      });
}

template <class Exec, class T>
void Edm<Exec, T>::prepare_training_inputs(const Exec& exec, const EdmConfig& cfg, const CX& x0,
                                           const CV1& sigma, const CX& noise, const X& x_sigma,
                                           const X& net_in, const V1& c_noise, const V1& weight) {
  const char* op = "dmis::edm::prepare_training_inputs";
  const int B = x0.extent(0), C = x0.extent(1), H = x0.extent(2), W = x0.extent(3);
  expect_shape(op, "sigma", sigma, {B});
  expect_shape(op, "noise", noise, {B, C, H, W});
  expect_shape(op, "x_sigma", x_sigma, {B, C, H, W});
  expect_shape(op, "net_in", net_in, {B, C, H, W});
  expect_shape(op, "c_noise", c_noise, {B});
  expect_shape(op, "weight", weight, {B});
  const T sd = T(cfg.sigma_data);
  const int n = C * H * W;
  Kokkos::parallel_for(
      "dmis::edm::prepare_inputs", Kokkos::RangePolicy<Exec>(exec, 0, B), KOKKOS_LAMBDA(int b) {
        const T s = sigma(b);
        const T c_in = T(1) / compat::sqrt(s * s + sd * sd);
        const T* a = &x0(b, 0, 0, 0);
        const T* e = &noise(b, 0, 0, 0);
        T* xs = &x_sigma(b, 0, 0, 0);
        T* ni = &net_in(b, 0, 0, 0);
        for (int i = 0; i < n; ++i) {
          const T v = a[i] + s * e[i];
          xs[i] = v;
          ni[i] = c_in * v;
        }
        c_noise(b) = compat::log(s) / T(4);
        weight(b) = (s * s + sd * sd) / ((s * sd) * (s * sd));
      });
}

template <class Exec, class T>
void Edm<Exec, T>::scale_input(const Exec& exec, const EdmConfig& cfg, const CX& x,
                               const CV1& sigma, const X& net_in, const V1& c_noise) {
  const char* op = "dmis::edm::scale_input";
  const int B = x.extent(0), C = x.extent(1), H = x.extent(2), W = x.extent(3);
  expect_shape(op, "sigma", sigma, {B});
  expect_shape(op, "net_in", net_in, {B, C, H, W});
  expect_shape(op, "c_noise", c_noise, {B});
  const T sd = T(cfg.sigma_data);
  const int n = C * H * W;
  Kokkos::parallel_for(
      "dmis::edm::scale_input", Kokkos::RangePolicy<Exec>(exec, 0, static_cast<size_t>(B) * n),
      KOKKOS_LAMBDA(size_t r) {
        const int b = static_cast<int>(r / n);
        const T s = sigma(b);
        (&net_in(b, 0, 0, 0))[r % n] = (&x(b, 0, 0, 0))[r % n] / compat::sqrt(s * s + sd * sd);
        if (r % n == 0) c_noise(b) = compat::log(s) / T(4);
      });
}

template <class Exec, class T>
void Edm<Exec, T>::masked_input(const Exec& exec, const EdmConfig& cfg, const CX& x,
                                const CX& mask, const CV1& sigma, const X& xm, const X& net_in,
                                const V1& c_noise) {
  const char* op = "dmis::edm::masked_input";
  const int B = x.extent(0), C = x.extent(1), H = x.extent(2), W = x.extent(3);
  expect_shape(op, "mask", mask, {B, 1, H, W});
  expect_shape(op, "sigma", sigma, {B});
  expect_shape(op, "xm", xm, {B, C, H, W});
  expect_shape(op, "net_in", net_in, {B, C + 1, H, W});
  expect_shape(op, "c_noise", c_noise, {B});
  const T sd = T(cfg.sigma_data);
  Kokkos::parallel_for(
      "dmis::edm::masked_input",
      Kokkos::MDRangePolicy<Exec, Kokkos::Rank<3>>(exec, {0, 0, 0}, {B, H, W}),
      KOKKOS_LAMBDA(int b, int h, int w) {
        const T s = sigma(b), m = mask(b, 0, h, w), c_in = T(1) / compat::sqrt(s * s + sd * sd);
        for (int c = 0; c < C; ++c) {
          const T v = m * x(b, c, h, w);
          xm(b, c, h, w) = v;
          net_in(b, c, h, w) = c_in * v;
        }
        net_in(b, C, h, w) = m;
        if (h == 0 && w == 0) c_noise(b) = compat::log(s) / T(4);
      });
}

template <class Exec, class T>
void Edm<Exec, T>::denoise(const Exec& exec, const EdmConfig& cfg, const CX& F, const CX& x,
                           const CV1& sigma, const X& D, const CX& mask) {
  const char* op = "dmis::edm::denoise";
  const int B = x.extent(0), C = x.extent(1), H = x.extent(2), W = x.extent(3);
  expect_shape(op, "F", F, {B, C, H, W});
  expect_shape(op, "sigma", sigma, {B});
  expect_shape(op, "D", D, {B, C, H, W});
  const bool masked = mask.extent(0) > 0;
  if (masked) expect_shape(op, "mask", mask, {B, 1, H, W});
  const T sd = T(cfg.sigma_data);
  const int n = C * H * W, hw = H * W;
  Kokkos::parallel_for(
      "dmis::edm::denoise", Kokkos::RangePolicy<Exec>(exec, 0, static_cast<size_t>(B) * n),
      KOKKOS_LAMBDA(size_t r) {
        const int b = static_cast<int>(r / n), i = static_cast<int>(r % n);
        const EdmScaling<T> scale(sigma(b), sd);
        const T xi = (&x(b, 0, 0, 0))[i], fi = (&F(b, 0, 0, 0))[i];
        (&D(b, 0, 0, 0))[i] =
            masked ? scale.masked(xi, fi, (&mask(b, 0, 0, 0))[i % hw]) : scale(xi, fi);
      });
}

template <class Exec, class T>
void Edm<Exec, T>::denoise_backward(const Exec& exec, const EdmConfig& cfg, const CX& dD,
                                    const CV1& sigma, const X& dF, const CX& mask) {
  const char* op = "dmis::edm::denoise_backward";
  const int B = dD.extent(0), C = dD.extent(1), H = dD.extent(2), W = dD.extent(3);
  expect_shape(op, "sigma", sigma, {B});
  expect_shape(op, "dF", dF, {B, C, H, W});
  const bool masked = mask.extent(0) > 0;
  if (masked) expect_shape(op, "mask", mask, {B, 1, H, W});
  const T sd = T(cfg.sigma_data);
  const int n = C * H * W, hw = H * W;
  Kokkos::parallel_for(
      "dmis::edm::denoise_bwd", Kokkos::RangePolicy<Exec>(exec, 0, static_cast<size_t>(B) * n),
      KOKKOS_LAMBDA(size_t r) {
        const int b = static_cast<int>(r / n), i = static_cast<int>(r % n);
        const T s = sigma(b);
        T c = s * sd / compat::sqrt(s * s + sd * sd);
        if (masked) {
          const T m = (&mask(b, 0, 0, 0))[i % hw];
          c = m * c + (T(1) - m) * sd;
        }
        (&dF(b, 0, 0, 0))[i] = c * (&dD(b, 0, 0, 0))[i];
      });
}

#define DMIS_INST(E, T) template struct Edm<E, T>;
DMIS_FOR_EACH_EXEC_AND_SCALAR(DMIS_INST)
#undef DMIS_INST

}  // namespace dmis::diffusion

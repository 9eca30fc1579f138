#include "kernels/cross_entropy.hpp"

#include "kernels/eti.hpp"

namespace dmis::kernels {

template <class Exec, class T>
void SoftmaxCrossEntropy<Exec, T>::forward(const Exec& exec, const CM& logits, const L& labels,
                                           const M& probs, const V1& per_sample, const V1& total) {
  const char* op = "dmis::xent::forward";
  const int B = logits.extent(0), K = logits.extent(1);
  expect(B > 0 && K > 0, op, cat("empty tensor logits ", detail::shape_string(logits)));
  expect_shape(op, "labels", labels, {B});
  expect_shape(op, "probs", probs, {B, K});
  expect_shape(op, "per_sample", per_sample, {B});
  expect_shape(op, "total", total, {1});
  Kokkos::parallel_for(
      "dmis::xent::fwd_softmax", Kokkos::RangePolicy<Exec>(exec, 0, B), KOKKOS_LAMBDA(int b) {
        T mx = logits(b, 0);
        for (int k = 1; k < K; ++k)
          mx = logits(b, k) > mx ? logits(b, k) : mx;
        T z = 0;
        for (int k = 0; k < K; ++k)
          z += compat::exp(logits(b, k) - mx);
        const T log_z = compat::log(z);
        // -log p[label] = log z - (logit[label] - max), without forming p[label] first
        per_sample(b) = log_z - (logits(b, labels(b)) - mx);
        for (int k = 0; k < K; ++k)
          probs(b, k) = compat::exp(logits(b, k) - mx - log_z);
      });
  Kokkos::parallel_for(
      "dmis::xent::fwd_total", Kokkos::RangePolicy<Exec>(exec, 0, 1), KOKKOS_LAMBDA(int) {
        T s = 0;
        for (int b = 0; b < B; ++b)
          s += per_sample(b);
        total(0) = s / T(B);
      });
}

template <class Exec, class T>
void SoftmaxCrossEntropy<Exec, T>::backward(const Exec& exec, T dloss, const CM& probs,
                                            const L& labels, const M& dlogits, GradMode mode) {
  const char* op = "dmis::xent::backward";
  const int B = probs.extent(0), K = probs.extent(1);
  expect(B > 0 && K > 0, op, cat("empty tensor probs ", detail::shape_string(probs)));
  expect_shape(op, "labels", labels, {B});
  expect_shape(op, "dlogits", dlogits, {B, K});
  const T scale = dloss / T(B);
  const bool accumulate = mode == GradMode::Accumulate;
  Kokkos::parallel_for(
      "dmis::xent::bwd", Kokkos::RangePolicy<Exec>(exec, 0, B), KOKKOS_LAMBDA(int b) {
        const int y = labels(b);
        for (int k = 0; k < K; ++k) {
          const T g = scale * (probs(b, k) - (k == y ? T(1) : T(0)));
          dlogits(b, k) = accumulate ? dlogits(b, k) + g : g;
        }
      });
}

template <class Exec, class T>
void SoftmaxCrossEntropy<Exec, T>::argmax(const Exec& exec, const CM& scores,
                                          const Tensor1<int, Exec>& predictions) {
  const char* op = "dmis::xent::argmax";
  const int B = scores.extent(0), K = scores.extent(1);
  expect(K > 0, op, cat("empty tensor scores ", detail::shape_string(scores)));
  expect_shape(op, "predictions", predictions, {B});
  Kokkos::parallel_for(
      "dmis::xent::argmax", Kokkos::RangePolicy<Exec>(exec, 0, B), KOKKOS_LAMBDA(int b) {
        int best = 0;
        for (int k = 1; k < K; ++k)
          if (scores(b, k) > scores(b, best))
            best = k;
        predictions(b) = best;
      });
}

template <class Exec, class T>
int SoftmaxCrossEntropy<Exec, T>::count_out_of_range(const Exec& exec, const L& labels, int K) {
  int bad = 0;
  Kokkos::parallel_reduce(
      "dmis::xent::count_out_of_range", Kokkos::RangePolicy<Exec>(exec, 0, labels.extent(0)),
      KOKKOS_LAMBDA(int b, int& n) { n += (labels(b) < 0 || labels(b) >= K) ? 1 : 0; }, bad);
  return bad;
}

#define DMIS_INST(E, T) template struct SoftmaxCrossEntropy<E, T>;
DMIS_FOR_EACH_EXEC_AND_SCALAR(DMIS_INST)
#undef DMIS_INST

} // namespace dmis::kernels

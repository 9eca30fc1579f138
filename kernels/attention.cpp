#include "kernels/attention.hpp"

#include <type_traits>

#include <KokkosBatched_Gemm_Decl.hpp>
#include <KokkosBatched_Gemm_Serial_Impl.hpp>
#include <KokkosBatched_Gemm_Team_Impl.hpp>

#include "kernels/eti.hpp"

namespace dmis::kernels {

namespace {
namespace kb = KokkosBatched;
using NT = kb::Trans::NoTranspose;
using TT = kb::Trans::Transpose;
using Algo = kb::Algo::Gemm::Blocked;  // register-blocked inner kernel (devices)

template <class T, class Exec>
using Mat = Kokkos::View<T**, Kokkos::LayoutRight, DeviceOf<Exec>,
                         Kokkos::MemoryTraits<Kokkos::Unmanaged>>;

template <class Exec>
constexpr bool on_host = std::is_same<typename Exec::memory_space, Kokkos::HostSpace>::value;

// One sample per team: a team of one thread on host backends, the backend's choice on devices.
template <class Exec>
Kokkos::TeamPolicy<Exec> per_sample(const Exec& exec, int B) {
  if constexpr (on_host<Exec>)
    return Kokkos::TeamPolicy<Exec>(exec, B, 1);
  else
    return Kokkos::TeamPolicy<Exec>(exec, B, Kokkos::AUTO);
}

// c = alpha op(a) op(b) + beta c for one sample. Host backends: Kokkos Kernels' serial unblocked
// GEMM on the team's one thread, whose inner loop runs along c's rows (contiguous here, so it
// vectorises): at the UNet's attention shapes (C = 64, N = 49, 64 samples over 2 threads) 0.45-
// 0.65 ms a product against 2.0-2.5 for the blocked team GEMM (measured, 2026-12-07). With
// op(b) = b^T its inner loop runs across b's rows, a reduction that does not vectorise (1.8 ms,
// the blocked GEMM's 2.0 within noise), so every product below takes b untransposed: the
// forward saves the probabilities transposed, backward keeps dS^T beside dS. Devices: the team
// GEMM.
template <class TA, class TB, class Exec, class Member, class T, class AV, class BV, class CV>
KOKKOS_INLINE_FUNCTION void sample_gemm(const Member& team, T alpha, const AV& a, const BV& b, T beta,
                                        const CV& c) {
  if constexpr (on_host<Exec>)
    kb::SerialGemm<TA, TB, kb::Algo::Gemm::Unblocked>::invoke(alpha, a, b, beta, c);
  else
    kb::TeamGemm<Member, TA, TB, Algo>::invoke(team, alpha, a, b, beta, c);
}

template <class CX>
void check_qkv(const char* op, const CX& qkv) {
  expect(qkv.extent(1) % 3 == 0 && qkv.extent(1) > 0, op,
         cat("qkv must have 3*C channels, got ", qkv.extent(1)));
  expect(qkv.extent(0) > 0 && qkv.extent(2) > 0 && qkv.extent(3) > 0, op,
         cat("empty tensor qkv ", detail::shape_string(qkv)));
}
}  // namespace

template <class Exec, class T>
void Attention<Exec, T>::forward(const Exec& exec, const CX& qkv, const X& h, const A3& attn) {
  const char* op = "dmis::attention::forward";
  check_qkv(op, qkv);
  const int B = qkv.extent(0), C = qkv.extent(1) / 3, H = qkv.extent(2), W = qkv.extent(3);
  const int N = H * W;
  expect_shape(op, "h", h, {B, C, H, W});
  expect_shape(op, "attn", attn, {B, N, N});
  const T scale = T(1) / compat::sqrt(T(C));
  using Policy = Kokkos::TeamPolicy<Exec>;
  using Member = typename Policy::member_type;
  // attn holds the probabilities transposed, at(b, j, i) = a(b, i, j), so that both products
  // take their right operand untransposed: s^T = scale k^T q, then h = v a^T = v at
  Kokkos::parallel_for(
      "dmis::attention::fwd_logits", per_sample(exec, B),
      KOKKOS_LAMBDA(const Member& team) {
        const int b = team.league_rank();
        Mat<const T, Exec> q(&qkv(b, 0, 0, 0), C, N);  // (C, N)
        Mat<const T, Exec> k(&qkv(b, C, 0, 0), C, N);  // (C, N)
        Mat<T, Exec> st(&attn(b, 0, 0), N, N);         // (N, N): s^T
        sample_gemm<TT, NT, Exec>(team, scale, k, q, T(0), st);
      });
  // softmax over j of s(i, j) = st(j, i): down the columns of st, kColumns columns a task
  // (contiguous across the columns, so the loops over them vectorise)
  constexpr int kColumns = 16;
  const int blocks = (N + kColumns - 1) / kColumns;
  Kokkos::parallel_for(
      "dmis::attention::fwd_softmax", Kokkos::RangePolicy<Exec>(exec, 0, B * blocks),
      KOKKOS_LAMBDA(int r) {
        const int b = r / blocks, i0 = (r % blocks) * kColumns;
        const int nc = N - i0 < kColumns ? N - i0 : kColumns;
        T* st = &attn(b, 0, i0);  // st[j * N + c]: s(i0 + c, j)
        T mx[kColumns], sum[kColumns];
        for (int c = 0; c < nc; ++c) mx[c] = st[c], sum[c] = T(0);
        for (int j = 1; j < N; ++j)
          for (int c = 0; c < nc; ++c) mx[c] = st[j * N + c] > mx[c] ? st[j * N + c] : mx[c];
        for (int j = 0; j < N; ++j)
          for (int c = 0; c < nc; ++c) {
            st[j * N + c] = compat::exp(st[j * N + c] - mx[c]);
            sum[c] += st[j * N + c];
          }
        for (int c = 0; c < nc; ++c) sum[c] = T(1) / sum[c];
        for (int j = 0; j < N; ++j)
          for (int c = 0; c < nc; ++c) st[j * N + c] *= sum[c];
      });
  Kokkos::parallel_for(
      "dmis::attention::fwd_values", per_sample(exec, B),
      KOKKOS_LAMBDA(const Member& team) {
        const int b = team.league_rank();
        Mat<const T, Exec> v(&qkv(b, 2 * C, 0, 0), C, N);  // (C, N)
        Mat<const T, Exec> at(&attn(b, 0, 0), N, N);       // (N, N): a^T
        Mat<T, Exec> hb(&h(b, 0, 0, 0), C, N);             // (C, N)
        sample_gemm<NT, NT, Exec>(team, T(1), v, at, T(0), hb);
      });
}

template <class Exec, class T>
void Attention<Exec, T>::backward(const Exec& exec, const CX& dh, const CX& qkv, const CA3& attn,
                                  const X& dqkv, GradMode mode, const V1& scratch) {
  const char* op = "dmis::attention::backward";
  check_qkv(op, qkv);
  const int B = qkv.extent(0), C = qkv.extent(1) / 3, H = qkv.extent(2), W = qkv.extent(3);
  const int N = H * W;
  expect_shape(op, "dh", dh, {B, C, H, W});
  expect_shape(op, "attn", attn, {B, N, N});
  expect_shape(op, "dqkv", dqkv, {B, 3 * C, H, W});
  expect(scratch.extent(0) >= scratch_size(B, N), op,
         cat("scratch has ", scratch.extent(0), " elements, needs ", scratch_size(B, N)));
  const T scale = T(1) / compat::sqrt(T(C));
  const T beta = mode == GradMode::Accumulate ? T(1) : T(0);
  const size_t plane = static_cast<size_t>(B) * N * N;
  A3 ds(scratch.data(), B, N, N);           // (B, N, N): dA, then dS
  A3 dst(scratch.data() + plane, B, N, N);  // (B, N, N): dS^T
  A3 ar(scratch.data() + 2 * plane, B, N, N);  // (B, N, N): A, from the saved A^T
  using Policy = Kokkos::TeamPolicy<Exec>;
  using Member = typename Policy::member_type;
  // dV = dh A ; dA = dh^T V
  Kokkos::parallel_for(
      "dmis::attention::bwd_values", per_sample(exec, B),
      KOKKOS_LAMBDA(const Member& team) {
        const int b = team.league_rank();
        Kokkos::parallel_for(Kokkos::TeamThreadRange(team, N * N),
                             [&](int e) { ar(b, e / N, e % N) = attn(b, e % N, e / N); });
        team.team_barrier();
        Mat<const T, Exec> dhb(&dh(b, 0, 0, 0), C, N);       // (C, N)
        Mat<const T, Exec> a(&ar(b, 0, 0), N, N);            // (N, N)
        Mat<const T, Exec> v(&qkv(b, 2 * C, 0, 0), C, N);    // (C, N)
        Mat<T, Exec> dv(&dqkv(b, 2 * C, 0, 0), C, N);        // (C, N)
        Mat<T, Exec> da(&ds(b, 0, 0), N, N);                 // (N, N)
        sample_gemm<NT, NT, Exec>(team, T(1), dhb, a, beta, dv);
        sample_gemm<TT, NT, Exec>(team, T(1), dhb, v, T(0), da);
      });
  // softmax backward, with the logit scale folded in: dS = scale * A (dA - rowsum(dA A)); dS^T
  // too, so that dQ's product takes its right operand untransposed
  Kokkos::parallel_for(
      "dmis::attention::bwd_softmax", Kokkos::RangePolicy<Exec>(exec, 0, B * N),
      KOKKOS_LAMBDA(int r) {
        const int b = r / N, i = r % N;
        T* row = &ds(b, i, 0);
        const T* a = &ar(b, i, 0);
        T dot = 0;
        for (int j = 0; j < N; ++j) dot += row[j] * a[j];
        for (int j = 0; j < N; ++j) {
          row[j] = scale * a[j] * (row[j] - dot);
          dst(b, j, i) = row[j];
        }
      });
  // dQ = K dS^T ; dK = Q dS
  Kokkos::parallel_for(
      "dmis::attention::bwd_qk", per_sample(exec, B), KOKKOS_LAMBDA(const Member& team) {
        const int b = team.league_rank();
        Mat<const T, Exec> q(&qkv(b, 0, 0, 0), C, N);  // (C, N)
        Mat<const T, Exec> k(&qkv(b, C, 0, 0), C, N);  // (C, N)
        Mat<const T, Exec> dsb(&ds(b, 0, 0), N, N);    // (N, N)
        Mat<const T, Exec> dstb(&dst(b, 0, 0), N, N);  // (N, N): dS^T
        Mat<T, Exec> dq(&dqkv(b, 0, 0, 0), C, N);      // (C, N)
        Mat<T, Exec> dk(&dqkv(b, C, 0, 0), C, N);      // (C, N)
        sample_gemm<NT, NT, Exec>(team, T(1), k, dstb, beta, dq);
        sample_gemm<NT, NT, Exec>(team, T(1), q, dsb, beta, dk);
      });
}

#define DMIS_INST(E, T) template struct Attention<E, T>;
DMIS_FOR_EACH_EXEC_AND_SCALAR(DMIS_INST)
#undef DMIS_INST

}  // namespace dmis::kernels

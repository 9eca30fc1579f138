#include "train/device_data.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "kernels/common.hpp"
#include "kernels/eti.hpp"

namespace dmis::train {

namespace {
template <class V, class S>
V upload(const char* name, const std::vector<S>& host, size_t n) {
  V d(std::string("dmis::data::") + name, n);
  auto h = Kokkos::create_mirror_view(d);
  for (size_t i = 0; i < n; ++i) h(i) = host[i];
  Kokkos::deep_copy(d, h);
  return d;
}
}  // namespace

template <class Exec>
DeviceData<Exec>::DeviceData(int N, int C, int H, int W, int K, const std::vector<uint8_t>& images,
                             const std::vector<int32_t>& observed,
                             const std::vector<uint8_t>& candidates,
                             const std::vector<uint8_t>& labeled)
    : m_N(N), m_C(C), m_H(H), m_W(W), m_K(K) {
  const size_t n = static_cast<size_t>(N) * C * H * W;
  if (images.size() != n)
    throw Error(cat("DeviceData: ", images.size(), " image bytes for ", N, " images of ", C, "x",
                    H, "x", W));
  m_images = upload<decltype(m_images)>("images", images, n);
  upload_supervision(observed, candidates, labeled);
}

template <class Exec>
DeviceData<Exec>::DeviceData(int N, int C, int H, int W, int K,
                             const std::vector<float>& observations,
                             const std::vector<uint8_t>& masks,
                             const std::vector<int32_t>& observed,
                             const std::vector<uint8_t>& candidates,
                             const std::vector<uint8_t>& labeled)
    : m_N(N), m_C(C), m_H(H), m_W(W), m_K(K) {
  const size_t n = static_cast<size_t>(N) * C * H * W, nm = static_cast<size_t>(N) * H * W;
  if (observations.size() != n || masks.size() != nm)
    throw Error(cat("DeviceData: ", observations.size(), " observed values and ", masks.size(),
                    " mask flags for ", N, " images of ", C, "x", H, "x", W));
  m_obs = upload<decltype(m_obs)>("observations", observations, n);
  m_masks = upload<decltype(m_masks)>("masks", masks, nm);
  upload_supervision(observed, candidates, labeled);
}

template <class Exec>
void DeviceData<Exec>::upload_supervision(const std::vector<int32_t>& observed,
                                          const std::vector<uint8_t>& candidates,
                                          const std::vector<uint8_t>& labeled) {
  const int N = m_N, K = m_K;
  if (observed.size() != static_cast<size_t>(N))
    throw Error(cat("DeviceData: ", observed.size(), " labels for ", N, " images"));
  m_observed = upload<decltype(m_observed)>("observed", observed, N);
  std::vector<uint8_t> cand(candidates);
  if (cand.empty()) {  // one-hot of the observed label (all classes when there is none)
    cand.assign(static_cast<size_t>(N) * K, 0);
    for (int i = 0; i < N; ++i)
      for (int k = 0; k < K; ++k)
        cand[static_cast<size_t>(i) * K + k] = observed[i] < 0 || observed[i] == k ? 1 : 0;
  }
  if (cand.size() != static_cast<size_t>(N) * K)
    throw Error(cat("DeviceData: candidate masks of ", cand.size(), " entries for ", N, " x ", K));
  m_candidates = upload<decltype(m_candidates)>("candidates", cand, cand.size());
  std::vector<uint8_t> lab(labeled);
  if (lab.empty()) {
    lab.resize(N);
    for (int i = 0; i < N; ++i) lab[i] = observed[i] >= 0 ? 1 : 0;
  }
  m_labeled = upload<decltype(m_labeled)>("labeled", lab, N);
  // the labelled images' indices, then the unlabelled ones' (data.labeled_share)
  std::vector<uint32_t> by_label;
  by_label.reserve(N);
  for (int i = 0; i < N; ++i)
    if (lab[i] != 0) by_label.push_back(static_cast<uint32_t>(i));
  m_n_labeled = static_cast<int>(by_label.size());
  for (int i = 0; i < N; ++i)
    if (lab[i] == 0) by_label.push_back(static_cast<uint32_t>(i));
  m_by_label = upload<decltype(m_by_label)>("by_label", by_label, N);
}

template <class Exec>
void DeviceData<Exec>::set_labeled_share(int global_batch, double share) {
  m_share_L = 0, m_share_B = 0;
  if (!(share > 0)) return;
  if (!(share < 1))
    throw InputError(cat("a share of the batch below 1 expected, found ", share));
  const int nl = m_n_labeled, nu = m_N - m_n_labeled;
  if (nl == 0 || nu == 0)
    throw InputError(cat("needs labelled and unlabelled training images (supervision.kind "
                         "unlabeled), found ", nl, " labelled of ", m_N));
  const int L = std::max(1, static_cast<int>(std::lround(share * global_batch)));
  if (L >= global_batch)
    throw InputError(cat(share, " of a batch of ", global_batch, " leaves no unlabelled slot"));
  m_share_L = L, m_share_B = global_batch;
}

template <class Exec>
void DeviceData<Exec>::gather(const Exec& exec, uint64_t seed, uint64_t first, rng::SampleIds ids,
                              const Tensor4<T, Exec>& x0, const Tensor1<int, Exec>& observed,
                              const Tensor2<uint8_t, Exec>& candidates,
                              const Tensor1<uint8_t, Exec>& labeled,
                              const Tensor1<int, Exec>& index, const Tensor4<T, Exec>& mask) const {
  const int B = x0.extent(0), n = m_C * m_H * m_W, K = m_K, hw = m_H * m_W;
  kernels::expect_shape("dmis::data::gather", "x0", x0, {B, m_C, m_H, m_W});
  const bool want_mask = mask.extent(0) > 0;
  if (want_mask) kernels::expect_shape("dmis::data::gather", "mask", mask, {B, 1, m_H, m_W});
  const bool corrupt = corrupted();
  const uint32_t N = static_cast<uint32_t>(m_N);
  auto images = m_images;
  auto values = m_obs;
  auto masks = m_masks;
  auto obs = m_observed;
  auto cand = m_candidates;
  auto lab = m_labeled;
  auto by_label = m_by_label;
  const uint32_t nl = static_cast<uint32_t>(m_n_labeled), L = static_cast<uint32_t>(m_share_L),
                 BG = static_cast<uint32_t>(m_share_B);
  if (L > 0 && first % BG != 0)  // the message is built only on failure (this runs every step)
    kernels::expect(false, "dmis::data::gather",
                    cat("a labelled share needs whole global batches of ", BG, " (stream position ", first, ")"));
  const uint64_t step = L > 0 ? first / BG : 0;
  // first the indices and per-sample labels, then the images (and masks) as flat copies: one
  // thread an element, so a GPU reads and writes them coalesced
  Kokkos::parallel_for(
      "dmis::data::gather", Kokkos::RangePolicy<Exec>(exec, 0, B), KOKKOS_LAMBDA(int b) {
        uint32_t i;
        if (L == 0) {
          i = index_at(first + ids(b), N, seed);
        } else {
          // slot g of the global batch is labelled when the even spread of L slots over BG
          // puts one there: c(g) = floor((g + 1) L / BG) labelled slots in [0, g]
          const uint64_t g = ids(b), c = (g + 1) * L / BG, before = g * L / BG;
          if (c > before)
            i = by_label(index_at(step * L + before, nl, seed ^ 0x6C62272E07BB0142ull));
          else
            i = by_label(nl + index_at(step * (BG - L) + (g - c), N - nl, seed ^ 0x2545F4914F6CDD1Dull));
        }
        index(b) = static_cast<int>(i);
        observed(b) = obs(i);
        labeled(b) = lab(i);
        for (int k = 0; k < K; ++k) candidates(b, k) = cand(static_cast<size_t>(i) * K + k);
      });
  Kokkos::parallel_for(
      "dmis::data::gather_images",
      Kokkos::RangePolicy<Exec>(exec, 0, static_cast<size_t>(B) * n), KOKKOS_LAMBDA(size_t r) {
        const size_t src = static_cast<size_t>(index(static_cast<int>(r / n))) * n + r % n;
        x0.data()[r] = corrupt ? T(values(src)) : T(images(src)) / T(127.5) - T(1);
      });
  if (want_mask)
    Kokkos::parallel_for(
        "dmis::data::gather_masks",
        Kokkos::RangePolicy<Exec>(exec, 0, static_cast<size_t>(B) * hw), KOKKOS_LAMBDA(size_t r) {
          const size_t src = static_cast<size_t>(index(static_cast<int>(r / hw))) * hw + r % hw;
          mask.data()[r] = corrupt ? T(masks(src)) : T(1);
        });
}

template <class Exec>
void DeviceData<Exec>::gather_range(const Exec& exec, int first, const Tensor4<T, Exec>& x0) const {
  const int B = x0.extent(0), n = m_C * m_H * m_W;
  kernels::expect_shape("dmis::data::gather_range", "x0", x0, {B, m_C, m_H, m_W});
  kernels::expect(first >= 0 && first + B <= m_N, "dmis::data::gather_range",
                  cat("samples [", first, ", ", first + B, ") of ", m_N));
  kernels::expect(!corrupted(), "dmis::data::gather_range",
                  "a corrupted set holds observations, not images");
  auto images = m_images;
  Kokkos::parallel_for(
      "dmis::data::gather_range", Kokkos::RangePolicy<Exec>(exec, 0, static_cast<size_t>(B) * n),
      KOKKOS_LAMBDA(size_t r) {
        const size_t b = r / n, e = r % n;
        (&x0(b, 0, 0, 0))[e] = T(images((first + b) * n + e)) / T(127.5) - T(1);
      });
}

#define DMIS_INST(E, T) DMIS_INST_##T(E)
#define DMIS_INST_float(E) template class DeviceData<E>;
#define DMIS_INST_double(E)
DMIS_FOR_EACH_EXEC_AND_SCALAR(DMIS_INST)
#undef DMIS_INST

}  // namespace dmis::train

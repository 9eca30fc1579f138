#pragma once
// Sums of device buffers over all ranks: in place when MPI can read the memory (host memory, or
// GPU memory with a GPU-aware MPI), otherwise through a host staging buffer allocated once.
#include <Kokkos_Core.hpp>
#include <string>

#include "core/types.hpp"
#include "dist/comm.hpp"

namespace dmis::dist {

template <class Exec>
class DeviceReducer {
public:
  static constexpr bool host_memory =
      Kokkos::SpaceAccessibility<Kokkos::HostSpace, typename Exec::memory_space>::accessible;

  /// For buffers of up to `capacity` elements.
  explicit DeviceReducer(size_t capacity)
      : m_ranks(size()), m_direct(host_memory || gpu_aware()) {
    if (m_ranks > 1 && !m_direct)
      m_host = Kokkos::View<float*, Kokkos::HostSpace>("dmis::dist::staging", capacity);
  }

  /// "in place (host memory)", "in place (GPU-aware MPI)" or "staged through host memory".
  std::string path() const {
    return host_memory ? "in place (host memory)"
                       : m_direct ? "in place (GPU-aware MPI)" : "staged through host memory";
  }

  /// v <- sum over ranks of v. Waits for `exec` first: MPI reads the finished buffer.
  void sum(const Exec& exec, const Tensor1<float, Exec>& v) {
    if (m_ranks == 1) return;
    exec.fence();
    const size_t n = v.extent(0);
    if (m_direct) {
      allreduce_sum(v.data(), n);
      return;
    }
    const auto h = Kokkos::subview(m_host, Kokkos::make_pair(size_t(0), n));
    Kokkos::deep_copy(h, v);
    allreduce_sum(h.data(), n);
    Kokkos::deep_copy(v, h);
  }

private:
  int m_ranks;
  bool m_direct;
  Kokkos::View<float*, Kokkos::HostSpace> m_host;
};

}  // namespace dmis::dist

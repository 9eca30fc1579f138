#pragma once
// Sums of device buffers over all ranks: in place when MPI can read the memory (host memory, or
// GPU memory with a GPU-aware MPI), otherwise through a host staging buffer allocated once.
#include <Kokkos_Core.hpp>
#include <cstdlib>
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
  /// DMIS_MPI_STAGED=1 forces the staged path even for host memory (to test it on CPUs).
  explicit DeviceReducer(size_t capacity)
      : m_ranks(size()), m_direct(!force_staged() && (host_memory || gpu_aware())) {
    if (m_ranks > 1 && !m_direct)
      m_host = Kokkos::View<float*, Kokkos::HostSpace>("dmis::dist::staging", capacity);
  }

  /// How the sums are made, for the run log.
  std::string path() const {
    return !m_direct ? "all-reduced through a host staging buffer"
                     : host_memory ? "all-reduced in place (host memory)"
                                   : "all-reduced in place (GPU-aware MPI)";
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
  static bool force_staged() {
    const char* e = std::getenv("DMIS_MPI_STAGED");
    return e && std::string(e) == "1";
  }
  int m_ranks;
  bool m_direct;
  Kokkos::View<float*, Kokkos::HostSpace> m_host;
};

}  // namespace dmis::dist

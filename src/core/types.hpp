#pragma once
// Tensor aliases: unmanaged LayoutRight views on an execution space's memory. LayoutRight is
// spelled out because the GPU default is LayoutLeft; activations are (B, C, H, W) as in PyTorch.
#include <Kokkos_Core.hpp>

namespace dmis {

using DeviceExec = Kokkos::DefaultExecutionSpace;
using HostExec = Kokkos::DefaultHostExecutionSpace;

template <class Exec>
using DeviceOf = Kokkos::Device<Exec, typename Exec::memory_space>;

template <class T, class Exec>
using Tensor1 = Kokkos::View<T*, Kokkos::LayoutRight, DeviceOf<Exec>,
                             Kokkos::MemoryTraits<Kokkos::Unmanaged>>;
template <class T, class Exec>
using Tensor2 = Kokkos::View<T**, Kokkos::LayoutRight, DeviceOf<Exec>,
                             Kokkos::MemoryTraits<Kokkos::Unmanaged>>;
template <class T, class Exec>
using Tensor3 = Kokkos::View<T***, Kokkos::LayoutRight, DeviceOf<Exec>,
                             Kokkos::MemoryTraits<Kokkos::Unmanaged>>;
template <class T, class Exec>
using Tensor4 = Kokkos::View<T****, Kokkos::LayoutRight, DeviceOf<Exec>,
                             Kokkos::MemoryTraits<Kokkos::Unmanaged>>;

/// Managed (owning) storage with the same layout; only allocated outside the hot path.
template <class T, class Exec>
using Buffer1 = Kokkos::View<T*, Kokkos::LayoutRight, DeviceOf<Exec>>;

/// How a backward pass writes an input gradient: overwrite, or add to what is there (used where
/// the input fans out: residual branches, skip connections, the time embedding).
enum class GradMode { Overwrite, Accumulate };

/// A view over the same memory, seen as one flat vector.
template <class V>
auto flat(const V& v) {
  using T = typename V::value_type;
  using Exec = typename V::execution_space;
  return Tensor1<T, Exec>(v.data(), v.span());
}

}  // namespace dmis

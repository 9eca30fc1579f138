// Configure-time check (cmake/DmisToolchainCheck.cmake): assign to a default-constructed View.
// GCC 12.2-12.5 with Kokkos' mdspan-based View can initialise the default-constructed View's
// allocation tracker to 0 instead of its "not tracked" flag; the assignment then releases a null
// allocation record and the program crashes (kokkos/kokkos#7464, #8223, #9262). No Kokkos
// initialisation: an unmanaged View is enough, so the check runs without a device.
#include <Kokkos_Core.hpp>
#include <cstdio>

__attribute__((noinline)) static void assign(Kokkos::View<float*, Kokkos::HostSpace>& v, float* p) {
  v = Kokkos::View<float*, Kokkos::HostSpace>(p, 4);
}

int main() {
  std::printf("dmis-check: start\n");
  std::fflush(stdout);
  float values[4] = {1, 2, 3, 4};
  Kokkos::View<float*, Kokkos::HostSpace> a;
  a = Kokkos::View<float*, Kokkos::HostSpace>(values, 4);
  Kokkos::View<float*, Kokkos::HostSpace> b;
  assign(b, values);
  std::printf("dmis-check: %s\n", a(3) == 4.0f && b(2) == 3.0f ? "ok" : "wrong values");
  return 0;
}

#pragma once
// Shared pieces of the kernel library: shape checks (host side, before any launch) and the
// deterministic team reduction.
#include <initializer_list>
#include <sstream>
#include <string>

#include "core/error.hpp"
#include "core/kokkos_compat.hpp"
#include "core/types.hpp"

namespace dmis::kernels {

namespace detail {
template <class V>
std::string shape_string(const V& v) {
  std::ostringstream os;
  os << "(";
  for (unsigned r = 0; r < V::rank; ++r) os << (r ? ", " : "") << v.extent(r);
  os << ")";
  return os.str();
}
}  // namespace detail

/// Throws ShapeError unless `v` has the expected extents (-1 matches any extent). The message
/// names the operation, the tensor, what was expected and what was found.
template <class V>
void expect_shape(const char* op, const char* name, const V& v, std::initializer_list<long> expected) {
  bool ok = (expected.size() == V::rank);
  unsigned r = 0;
  for (long e : expected) {
    if (ok && e >= 0 && static_cast<long>(v.extent(r)) != e) ok = false;
    ++r;
  }
  if (ok) return;
  std::ostringstream want;
  want << "(";
  r = 0;
  for (long e : expected) {
    want << (r++ ? ", " : "");
    if (e < 0)
      want << "*";
    else
      want << e;
  }
  want << ")";
  throw ShapeError(cat(op, ": tensor '", name, "' has shape ", detail::shape_string(v),
                       ", expected ", want.str()));
}

/// Throws ShapeError unless `cond` holds; `what` says what was expected.
inline void expect(bool cond, const char* op, const std::string& what) {
  if (!cond) throw ShapeError(cat(op, ": ", what));
}

/// Number of partial sums in a team reduction. The summation order depends on this constant
/// and on n only, never on the team size, thread count or backend: results are reproducible.
constexpr int kReduceLanes = 32;

/// Scratch bytes a team needs for team_sum and team_sum2.
template <class T>
KOKKOS_INLINE_FUNCTION constexpr size_t team_sum_scratch_bytes() {
  return 2 * kReduceLanes * sizeof(T);
}

/// Sum f(i) for i in [0, n) over a team. `partials` is team scratch of kReduceLanes elements.
/// Lane l sums i = l, l + L, l + 2L, ... in order; the L partials are then added in order by
/// every thread. Every thread of the team returns the same value.
///
/// A team of one thread (the host backends) runs the lanes as the inner loop, so the
/// L accumulators vectorise; the order of every addition is the same as on a GPU team, so the
/// result is bitwise identical.
template <class Member, class T, class F>
KOKKOS_INLINE_FUNCTION T team_sum(const Member& team, int n, T* partials, const F& f) {
  if (team.team_size() == 1) {
    T acc[kReduceLanes];
    for (int l = 0; l < kReduceLanes; ++l) acc[l] = T(0);
    const int full = n / kReduceLanes * kReduceLanes;
    for (int base = 0; base < full; base += kReduceLanes)
      for (int l = 0; l < kReduceLanes; ++l) acc[l] += f(base + l);
    for (int l = 0; l < n - full; ++l) acc[l] += f(full + l);
    T total = 0;
    for (int l = 0; l < kReduceLanes; ++l) total += acc[l];
    return total;
  }
  Kokkos::parallel_for(Kokkos::TeamThreadRange(team, kReduceLanes), [&](int lane) {
    T s = 0;
    for (int i = lane; i < n; i += kReduceLanes) s += f(i);
    partials[lane] = s;
  });
  team.team_barrier();
  T total = 0;
  for (int l = 0; l < kReduceLanes; ++l) total += partials[l];
  team.team_barrier();  // partials may be reused right after
  return total;
}

/// Two sums at once (f writes both terms of element i), in the same fixed order as team_sum.
/// `partials` holds 2 * kReduceLanes elements.
template <class Member, class T, class F>
KOKKOS_INLINE_FUNCTION void team_sum2(const Member& team, int n, T* partials, const F& f, T& sa,
                                      T& sb) {
  if (team.team_size() == 1) {
    T acc_a[kReduceLanes], acc_b[kReduceLanes];
    for (int l = 0; l < kReduceLanes; ++l) acc_a[l] = acc_b[l] = T(0);
    const int full = n / kReduceLanes * kReduceLanes;
    for (int base = 0; base < full; base += kReduceLanes)
      for (int l = 0; l < kReduceLanes; ++l) {
        T a, b;
        f(base + l, a, b);
        acc_a[l] += a;
        acc_b[l] += b;
      }
    for (int l = 0; l < n - full; ++l) {
      T a, b;
      f(full + l, a, b);
      acc_a[l] += a;
      acc_b[l] += b;
    }
    sa = sb = T(0);
    for (int l = 0; l < kReduceLanes; ++l) {
      sa += acc_a[l];
      sb += acc_b[l];
    }
    return;
  }
  Kokkos::parallel_for(Kokkos::TeamThreadRange(team, kReduceLanes), [&](int lane) {
    T a = 0, b = 0;
    for (int i = lane; i < n; i += kReduceLanes) {
      T x, y;
      f(i, x, y);
      a += x;
      b += y;
    }
    partials[lane] = a;
    partials[kReduceLanes + lane] = b;
  });
  team.team_barrier();
  sa = sb = T(0);
  for (int l = 0; l < kReduceLanes; ++l) {
    sa += partials[l];
    sb += partials[kReduceLanes + l];
  }
  team.team_barrier();
}

/// Scratch pointer for team_sum.
template <class T, class Member>
KOKKOS_INLINE_FUNCTION T* team_partials(const Member& team) {
  return static_cast<T*>(team.team_scratch(0).get_shmem(team_sum_scratch_bytes<T>()));
}

}  // namespace dmis::kernels

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

/// Scratch bytes a team needs for team_sum.
template <class T>
constexpr size_t team_sum_scratch_bytes() {
  return kReduceLanes * sizeof(T);
}

/// Sum f(i) for i in [0, n) over a team. `partials` is team scratch of kReduceLanes elements.
/// Lane l sums i = l, l + L, l + 2L, ... in order; the L partials are then added in order by
/// every thread. Every thread of the team returns the same value.
template <class Member, class T, class F>
KOKKOS_INLINE_FUNCTION T team_sum(const Member& team, int n, T* partials, const F& f) {
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

/// Scratch pointer for team_sum.
template <class T, class Member>
KOKKOS_INLINE_FUNCTION T* team_partials(const Member& team) {
  return static_cast<T*>(team.team_scratch(0).get_shmem(team_sum_scratch_bytes<T>()));
}

}  // namespace dmis::kernels

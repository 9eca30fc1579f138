#pragma once
// The kinds of supervision (supervision.kind), shared by the data layer (generating and storing
// it) and the methods (the likelihood p(z | y) of each kind, selected in device code by the
// enum's value).
#include <array>

namespace dmis::data {

enum class SupervisionKind : int { Clean = 0, Noisy = 1, Partial = 2, Unlabeled = 3 };

/// The deck's spelling of each kind, in the enum's order.
inline constexpr std::array<const char*, 4> kSupervisionKindNames{"clean", "noisy", "partial",
                                                                 "unlabeled"};

}  // namespace dmis::data

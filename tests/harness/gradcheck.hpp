#pragma once
// Gradient checks: backward against central finite differences, in double, of the scalar
// L = <f(inputs), R> with a random cotangent R (not the all-ones cotangent, which would miss
// errors that cancel in a plain sum).
#include <functional>
#include <string>
#include <vector>

#include "harness/tensor.hpp"

namespace dmis::test {

template <class Exec>
struct GradInput {
  std::string name;
  TestTensor<double, Exec>* value;     // perturbed element by element
  TestTensor<double, Exec>* analytic;  // what backward computed (host side valid)
};

/// For every element of every input: (L(x + h) - L(x - h)) / 2h against the analytic gradient,
/// |analytic - fd| <= tol (1 + |fd|). `loss` runs the forward pass on the current device inputs
/// and returns L.
template <class Exec>
void expect_gradients_match(const std::vector<GradInput<Exec>>& inputs,
                            const std::function<double()>& loss, double h = 1e-6,
                            double tol = 1e-6) {
  for (const auto& in : inputs) {
    ASSERT_EQ(in.value->size(), in.analytic->size()) << in.name;
    double worst = 0, worst_fd = 0, worst_an = 0;
    size_t worst_i = 0;
    for (size_t i = 0; i < in.value->size(); ++i) {
      const double x0 = (*in.value)[i];
      (*in.value)[i] = x0 + h;
      in.value->upload();
      const double lp = loss();
      (*in.value)[i] = x0 - h;
      in.value->upload();
      const double lm = loss();
      (*in.value)[i] = x0;
      in.value->upload();
      const double fd = (lp - lm) / (2 * h);
      const double an = (*in.analytic)[i];
      const double err = std::fabs(an - fd) / (1 + std::fabs(fd));
      if (!(err <= worst)) {
        worst = err;
        worst_i = i;
        worst_fd = fd;
        worst_an = an;
      }
    }
    EXPECT_LE(worst, tol) << "gradient of '" << in.name << "' element " << worst_i
                          << ": backward " << worst_an << ", finite differences " << worst_fd;
  }
}

}  // namespace dmis::test

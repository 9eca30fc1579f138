#pragma once
// Test tensors: a device buffer, its host mirror and a shape, with seeded random fills and
// comparisons. Allocation and copies are fine here: this is test code, not the hot path.
#include <gtest/gtest.h>

#include <Kokkos_Core.hpp>
#include <cmath>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/types.hpp"

namespace dmis::test {

template <class T, class Exec>
struct TestTensor {
  using Dev = Kokkos::View<T*, Kokkos::LayoutRight, DeviceOf<Exec>>;
  std::vector<int> shape;
  Dev dev;
  typename Dev::HostMirror host;

  TestTensor() = default;
  TestTensor(const std::string& label, std::vector<int> s) : shape(std::move(s)) {
    size_t n = 1;
    for (int e : shape) n *= static_cast<size_t>(e);
    dev = Dev("dmis::test::" + label, n);
    host = Kokkos::create_mirror_view(dev);
  }
  size_t size() const { return dev.extent(0); }
  T& operator[](size_t i) { return host(i); }
  T operator[](size_t i) const { return host(i); }

  void upload() { Kokkos::deep_copy(dev, host); }
  void download() {
    Kokkos::fence();
    Kokkos::deep_copy(host, dev);
  }

  /// Normal(0, scale^2) values from a seeded generator, uploaded.
  TestTensor& randn(uint64_t seed, double scale = 1.0, double offset = 0.0) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> nd(0.0, 1.0);
    for (size_t i = 0; i < size(); ++i) host(i) = static_cast<T>(offset + scale * nd(rng));
    upload();
    return *this;
  }
  TestTensor& fill(T v) {
    for (size_t i = 0; i < size(); ++i) host(i) = v;
    upload();
    return *this;
  }
  std::vector<double> values() const {
    std::vector<double> v(size());
    for (size_t i = 0; i < size(); ++i) v[i] = static_cast<double>(host(i));
    return v;
  }
  void set(const std::vector<double>& v) {
    for (size_t i = 0; i < size(); ++i) host(i) = static_cast<T>(v[i]);
    upload();
  }

  Tensor1<T, Exec> t1() const { return Tensor1<T, Exec>(dev.data(), size()); }
  Tensor2<T, Exec> t2() const { return Tensor2<T, Exec>(dev.data(), shape.at(0), shape.at(1)); }
  Tensor3<T, Exec> t3() const {
    return Tensor3<T, Exec>(dev.data(), shape.at(0), shape.at(1), shape.at(2));
  }
  Tensor4<T, Exec> t4() const {
    return Tensor4<T, Exec>(dev.data(), shape.at(0), shape.at(1), shape.at(2), shape.at(3));
  }
};

/// An empty view (extent 0): "not needed" / "no bias" in kernel calls.
template <class V>
V none() {
  return V();
}

/// Max |a - b| / (atol + rtol |b|) over all elements; <= 1 means close. Reports the worst index.
inline ::testing::AssertionResult all_close(const std::vector<double>& a,
                                            const std::vector<double>& b, double rtol,
                                            double atol, const std::string& what = "") {
  if (a.size() != b.size())
    return ::testing::AssertionFailure()
           << what << ": sizes differ (" << a.size() << " vs " << b.size() << ")";
  double worst = 0;
  size_t wi = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double r =
        a[i] == b[i] ? 0.0 : std::fabs(a[i] - b[i]) / (atol + rtol * std::fabs(b[i]));
    if (!(r <= worst)) {  // also catches NaN
      worst = r;
      wi = i;
      if (std::isnan(r)) break;
    }
  }
  if (worst <= 1.0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << what << ": element " << wi << " is " << a[wi] << ", expected " << b[wi]
         << " (rtol " << rtol << ", atol " << atol << ", ratio " << worst << ")";
}

/// <a, b> in double.
template <class TA, class E>
double dot(const TestTensor<TA, E>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

}  // namespace dmis::test

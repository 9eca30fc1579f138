#include "models/evaluator.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "kernels/conv2d.hpp"
#include "kernels/eti.hpp"
#include "kernels/groupnorm.hpp"
#include "kernels/linear.hpp"
#include "kernels/pool.hpp"

namespace dmis::models {

void EvaluatorConfig::validate() const {
  auto bad = [](const std::string& field, const std::string& why) {
    throw InputError(cat("evaluator config: ", field, " ", why));
  };
  if (in_channels < 1)
    bad("in_channels", cat("must be >= 1, found ", in_channels));
  if (resolution < 1)
    bad("resolution", cat("must be >= 1, found ", resolution));
  if (classes < 2)
    bad("classes", cat("must be >= 2, found ", classes));
  if (groups < 1)
    bad("groups", cat("must be >= 1, found ", groups));
  if (channels.empty())
    bad("channels", "must list at least one stage");
  if (strides.size() != channels.size())
    bad("strides",
        cat("must have one entry per stage (", channels.size(), "), found ", strides.size()));
  for (size_t i = 0; i < channels.size(); ++i) {
    if (channels[i] < 1 || channels[i] % groups != 0)
      bad(cat("channels[", i, "]"),
          cat("must be a positive multiple of groups (", groups, "), found ", channels[i]));
    if (strides[i] != 1 && strides[i] != 2)
      bad(cat("strides[", i, "]"), cat("must be 1 or 2, found ", strides[i]));
  }
  if (!(gn_eps > 0))
    bad("gn_eps", cat("must be > 0, found ", gn_eps));
}

std::string EvaluatorConfig::describe() const {
  std::ostringstream os;
  int cin = in_channels, r = resolution;
  for (size_t i = 0; i < channels.size(); ++i) {
    r = (r - 1) / strides[i] + 1;
    os << "conv3x3 " << cin << "->" << channels[i] << (strides[i] == 2 ? " /2" : "") << " GN SiLU ("
       << r << "x" << r << "), ";
    cin = channels[i];
  }
  os << "avgpool, linear " << cin << "->" << classes;
  return os.str();
}

ParamTable evaluator_param_table(const EvaluatorConfig& cfg) {
  cfg.validate();
  ParamTable t;
  int cin = cfg.in_channels;
  for (size_t i = 0; i < cfg.channels.size(); ++i) {
    const int c = cfg.channels[i];
    t.add(cat("conv", i, ".weight"), {c, cin, 3, 3});
    t.add(cat("conv", i, ".bias"), {c});
    t.add(cat("norm", i, ".weight"), {c});
    t.add(cat("norm", i, ".bias"), {c});
    cin = c;
  }
  t.add("fc.weight", {cfg.classes, cin});
  t.add("fc.bias", {cfg.classes});
  return t;
}

template <class Exec, class T>
void init_evaluator_params(const Exec& exec, const ParamTable& table,
                           const Tensor1<T, Exec>& params, uint64_t seed) {
  kernels::expect_shape("dmis::evaluator::init", "params", params,
                        {static_cast<long>(table.total())});
  const auto& entries = table.entries();
  for (size_t idx = 0; idx < entries.size(); ++idx) {
    const ParamInfo& p = entries[idx];
    const std::string stem = p.name.substr(0, p.name.rfind('.'));
    const bool is_norm = stem.compare(0, 4, "norm") == 0;
    const bool is_weight = p.name.size() > 7 && p.name.substr(p.name.size() - 7) == ".weight";
    double bound = 0;
    if (!is_norm) {
      const ParamInfo& w = table.at(stem + ".weight");
      bound = 1.0 / std::sqrt(static_cast<double>(w.numel / static_cast<size_t>(w.shape[0])));
    }
    T* dst = params.data() + p.offset;
    const rng::Philox gen(seed, rng::kInit);
    const uint32_t tensor = static_cast<uint32_t>(idx);
    const T constant = is_weight ? T(1) : T(0), bd = static_cast<T>(bound);
    Kokkos::parallel_for(
        "dmis::evaluator::init", Kokkos::RangePolicy<Exec>(exec, 0, p.numel),
        KOKKOS_LAMBDA(size_t i) {
          dst[i] =
              is_norm
                  ? constant
                  : bd * (T(2) * rng::uniform<T>(gen, tensor, 0u, static_cast<uint32_t>(i)) - T(1));
        });
  }
}

template <class Exec, class T>
Evaluator<Exec, T>::Evaluator(const EvaluatorConfig& cfg)
    : m_cfg(cfg), m_table(evaluator_param_table(cfg)) {
  int cin = cfg.in_channels, r = cfg.resolution;
  for (size_t i = 0; i < cfg.channels.size(); ++i) {
    Stage s;
    s.w = m_table.at(cat("conv", i, ".weight")).offset;
    s.b = m_table.at(cat("conv", i, ".bias")).offset;
    s.g = m_table.at(cat("norm", i, ".weight")).offset;
    s.beta = m_table.at(cat("norm", i, ".bias")).offset;
    s.cin = cin;
    s.cout = cfg.channels[i];
    s.stride = cfg.strides[i];
    s.Hin = r;
    s.Ho = (r - 1) / s.stride + 1; // pad 1, kernel 3
    m_stages.push_back(s);
    cin = s.cout;
    r = s.Ho;
  }
  m_fc_w = m_table.at("fc.weight").offset;
  m_fc_b = m_table.at("fc.bias").offset;
}

template <class Exec, class T> void Evaluator<Exec, T>::prepare(int batch, bool inference_only) {
  if (batch <= 0)
    throw InputError(cat("evaluator: batch size must be > 0, got ", batch));
  m_batch = batch;
  m_inference_only = inference_only;
  const bool host =
      Kokkos::SpaceAccessibility<Kokkos::HostSpace, typename Exec::memory_space>::accessible;
  // As the UNet: on the host, im2col chunks of about 12 MB stay near the caches.
  const double budget = (host ? 12.0 : 1024.0) * 1024.0 * 1024.0 / sizeof(T);
  const int B = batch, G = m_cfg.groups, K = m_cfg.classes, F = m_cfg.features();
  size_t used = 0;
  auto take = [&](size_t n) {
    const size_t at = used;
    used += (n + 63) / 64 * 64; // 256-byte aligned slices
    return at;
  };
  size_t scratch = 0, max_act = 0;
  for (Stage& s : m_stages) {
    const size_t act = static_cast<size_t>(B) * s.cout * s.Ho * s.Ho;
    max_act = std::max(max_act, act);
    s.conv = take(act);
    s.act = take(act);
    s.mean = take(static_cast<size_t>(B) * G);
    s.rstd = take(static_cast<size_t>(B) * G);
    const auto g = kernels::Conv2dGeometry::make(B, s.cin, s.Hin, s.Hin, s.cout, 3, s.stride);
    scratch = std::max(scratch, kernels::Conv2d<Exec, T>::scratch_within(g, budget));
    scratch = std::max(scratch, kernels::GroupNorm<Exec, T>::scratch_size(B, s.cout, G));
  }
  m_feat = take(static_cast<size_t>(B) * F);
  m_logits = take(static_cast<size_t>(B) * K);
  if (!inference_only) {
    m_dfeat = take(static_cast<size_t>(B) * F);
    m_ga = take(max_act);
    m_gb = take(max_act);
  }
  m_scratch = take(scratch);
  m_scratch_n = scratch;
  m_ws = Buffer1<T, Exec>(
      Kokkos::view_alloc(Kokkos::WithoutInitializing, "dmis::evaluator::workspace"), used);
}

template <class Exec, class T> Tensor2<T, Exec> Evaluator<Exec, T>::logits(int n) const {
  return ws2(m_logits, n, m_cfg.classes);
}

template <class Exec, class T> Tensor2<T, Exec> Evaluator<Exec, T>::features(int n) const {
  return ws2(m_feat, n, m_cfg.features());
}

template <class Exec, class T>
void Evaluator<Exec, T>::forward(const Exec& exec, const CV1& params, const CX& x) {
  const char* op = "dmis::evaluator::forward";
  kernels::expect(m_batch > 0, op, "prepare() was not called");
  kernels::expect_shape(op, "params", params, {static_cast<long>(m_table.total())});
  const int n = static_cast<int>(x.extent(0)), G = m_cfg.groups, R = m_cfg.resolution;
  kernels::expect(n >= 1 && n <= m_batch, op,
                  cat("batch of ", n, " images, the workspace holds 1 to ", m_batch));
  kernels::expect_shape(op, "x", x, {n, m_cfg.in_channels, R, R});
  const T* p = params.data();
  const Tensor1<T, Exec> scratch(m_ws.data() + m_scratch, m_scratch_n);
  CX in = x;
  for (const Stage& s : m_stages) {
    const auto c = ws4(s.conv, n, s.cout, s.Ho), a = ws4(s.act, n, s.cout, s.Ho);
    kernels::Conv2d<Exec, T>::forward(exec, in, CX(p + s.w, s.cout, s.cin, 3, 3),
                                      CV1(p + s.b, s.cout), s.stride, c, scratch);
    kernels::GroupNorm<Exec, T>::forward(exec, c, CV1(p + s.g, s.cout), CV1(p + s.beta, s.cout), G,
                                         static_cast<T>(m_cfg.gn_eps), a, ws2(s.mean, n, G),
                                         ws2(s.rstd, n, G), kernels::Activation::Silu);
    in = a;
  }
  const int F = m_cfg.features(), K = m_cfg.classes;
  kernels::GlobalAvgPool<Exec, T>::forward(exec, in, features(n));
  kernels::Linear<Exec, T>::forward(exec, features(n), Tensor2<const T, Exec>(p + m_fc_w, K, F),
                                    CV1(p + m_fc_b, K), logits(n));
}

template <class Exec, class T>
void Evaluator<Exec, T>::backward(const Exec& exec, const CV1& params, const CX& x,
                                  const Tensor2<const T, Exec>& dlogits,
                                  const Tensor1<T, Exec>& grads) {
  const char* op = "dmis::evaluator::backward";
  kernels::expect(!m_inference_only && m_batch > 0, op,
                  "the workspace was prepared for inference only");
  kernels::expect_shape(op, "params", params, {static_cast<long>(m_table.total())});
  kernels::expect_shape(op, "grads", grads, {static_cast<long>(m_table.total())});
  const int n = static_cast<int>(x.extent(0)), G = m_cfg.groups, R = m_cfg.resolution;
  const int F = m_cfg.features(), K = m_cfg.classes;
  kernels::expect(n >= 1 && n <= m_batch, op,
                  cat("batch of ", n, " images, the workspace holds 1 to ", m_batch));
  kernels::expect_shape(op, "x", x, {n, m_cfg.in_channels, R, R});
  kernels::expect_shape(op, "dlogits", dlogits, {n, K});
  const T* p = params.data();
  T* gp = grads.data();
  const Tensor1<T, Exec> scratch(m_ws.data() + m_scratch, m_scratch_n);
  const auto dfeat = ws2(m_dfeat, n, F);
  kernels::Linear<Exec, T>::backward(
      exec, dlogits, features(n), Tensor2<const T, Exec>(p + m_fc_w, K, F), dfeat,
      GradMode::Overwrite, Tensor2<T, Exec>(gp + m_fc_w, K, F), Tensor1<T, Exec>(gp + m_fc_b, K));
  const Stage& last = m_stages.back();
  kernels::GlobalAvgPool<Exec, T>::backward(exec, dfeat, ws4(m_ga, n, last.cout, last.Ho),
                                            GradMode::Overwrite);
  // ga holds the gradient with respect to a stage's output, gb with respect to its conv output
  for (size_t i = m_stages.size(); i-- > 0;) {
    const Stage& s = m_stages[i];
    const auto ga = ws4(m_ga, n, s.cout, s.Ho), gb = ws4(m_gb, n, s.cout, s.Ho);
    kernels::GroupNorm<Exec, T>::backward(
        exec, ga, ws4(s.conv, n, s.cout, s.Ho), CV1(p + s.g, s.cout), CV1(p + s.beta, s.cout),
        ws2(s.mean, n, G), ws2(s.rstd, n, G), gb, GradMode::Overwrite,
        Tensor1<T, Exec>(gp + s.g, s.cout), Tensor1<T, Exec>(gp + s.beta, s.cout), scratch,
        kernels::Activation::Silu, ga);
    const CX in = i == 0 ? x : CX(ws4(m_stages[i - 1].act, n, s.cin, s.Hin));
    const auto dx = i == 0 ? Tensor4<T, Exec>() : ws4(m_ga, n, s.cin, s.Hin);
    kernels::Conv2d<Exec, T>::backward(exec, gb, in, CX(p + s.w, s.cout, s.cin, 3, 3), s.stride, dx,
                                       GradMode::Overwrite,
                                       Tensor4<T, Exec>(gp + s.w, s.cout, s.cin, 3, 3),
                                       Tensor1<T, Exec>(gp + s.b, s.cout), scratch);
  }
}

template <class Exec, class T> double Evaluator<Exec, T>::forward_flops_per_sample() const {
  double f = 0;
  for (const Stage& s : m_stages)
    f += 2.0 * s.cout * s.cin * 9 * s.Ho * s.Ho;
  return f + 2.0 * m_cfg.features() * m_cfg.classes;
}

#define DMIS_INST(E, T)                                                                            \
  template class Evaluator<E, T>;                                                                  \
  template void init_evaluator_params<E, T>(const E&, const ParamTable&, const Tensor1<T, E>&,     \
                                            uint64_t);
DMIS_FOR_EACH_EXEC_AND_SCALAR(DMIS_INST)
#undef DMIS_INST

} // namespace dmis::models

#pragma once
// The evaluator: a small CNN classifier built from the kernel library, trained by the project on
// the clean training split and used to judge generated images (../shared/spec/method.md
// section 6, docs/evaluation.md). Its pooled last-layer activations are the "evaluator
// features" in which FD, Density and Coverage are measured.
//
//   x (B, C_in, R, R)
//   for each stage i: conv3x3 (stride s_i) -> GroupNorm -> SiLU     (B, c_i, R_i, R_i)
//   global average pool                                              (B, F), F = c_last
//   linear F -> K                                                    (B, K) logits
//
// Parameters live in one flat buffer described by a ParamTable (names conv<i>.weight,
// conv<i>.bias, norm<i>.weight, norm<i>.bias, fc.weight, fc.bias, as a PyTorch state_dict);
// activations live in one workspace sized by prepare(batch), so forward and backward allocate
// nothing. Any batch n <= batch() may be passed (the last, partial batch of an evaluation).
#include <cstdint>
#include <string>
#include <vector>

#include "core/params.hpp"
#include "core/types.hpp"

namespace dmis::models {

struct EvaluatorConfig {
  int in_channels = 1;
  int resolution = 28;
  int classes = 10;
  int groups = 8; // GroupNorm groups (divides every stage's channels)
  std::vector<int> channels{32, 64, 64, 128};
  std::vector<int> strides{1, 2, 1, 2}; // 1 or 2 per stage
  float gn_eps = 1e-5f;

  /// Throws InputError naming the offending field and why.
  void validate() const;
  int features() const { return channels.empty() ? 0 : channels.back(); }
  /// "conv 1->32 s1, ..., pool, linear 128->10" in one line.
  std::string describe() const;
};

/// The parameter table of a configuration.
ParamTable evaluator_param_table(const EvaluatorConfig& cfg);

/// PyTorch's default initialisation (convolutions and the dense layer U(+-1/sqrt(fan_in)),
/// GroupNorm (1, 0)), deterministic in `seed`, on `exec`.
template <class Exec, class T>
void init_evaluator_params(const Exec& exec, const ParamTable& table,
                           const Tensor1<T, Exec>& params, uint64_t seed);

template <class Exec, class T = float> class Evaluator {
public:
  using CX = Tensor4<const T, Exec>;
  using CV1 = Tensor1<const T, Exec>;

  explicit Evaluator(const EvaluatorConfig& cfg);
  const EvaluatorConfig& config() const { return m_cfg; }
  const ParamTable& table() const { return m_table; }

  /// Sizes and allocates the workspace for batches of up to `batch` images (outside the hot
  /// path). With `inference_only` no gradient buffers are allocated and backward() is refused.
  void prepare(int batch, bool inference_only = false);
  int batch() const { return m_batch; }
  size_t workspace_bytes() const { return m_ws.span() * sizeof(T); }

  /// Logits and features of x (n, C_in, R, R), n <= batch().
  void forward(const Exec& exec, const CV1& params, const CX& x);
  /// (n, K) and (n, F) of the last forward of n images.
  Tensor2<T, Exec> logits(int n) const;
  Tensor2<T, Exec> features(int n) const;
  /// grads += d(loss)/d(params) from dlogits (n, K) of the last forward (same params and x).
  void backward(const Exec& exec, const CV1& params, const CX& x,
                const Tensor2<const T, Exec>& dlogits, const Tensor1<T, Exec>& grads);

  /// Multiply-adds x 2 of one image's forward pass.
  double forward_flops_per_sample() const;

private:
  struct Stage {
    size_t w = 0, b = 0, g = 0, beta = 0; // parameter offsets
    int cin = 0, cout = 0, stride = 1, Hin = 0, Ho = 0;
    size_t conv = 0, act = 0, mean = 0, rstd = 0; // workspace offsets (per batch() rows)
  };
  Tensor4<T, Exec> ws4(size_t off, int n, int C, int H) const {
    return Tensor4<T, Exec>(m_ws.data() + off, n, C, H, H);
  }
  Tensor2<T, Exec> ws2(size_t off, int n, int C) const {
    return Tensor2<T, Exec>(m_ws.data() + off, n, C);
  }

  EvaluatorConfig m_cfg;
  ParamTable m_table;
  std::vector<Stage> m_stages;
  size_t m_fc_w = 0, m_fc_b = 0;
  int m_batch = 0;
  bool m_inference_only = false;
  Buffer1<T, Exec> m_ws;
  size_t m_feat = 0, m_logits = 0, m_dfeat = 0, m_ga = 0, m_gb = 0, m_scratch = 0;
  size_t m_scratch_n = 0;
};

} // namespace dmis::models

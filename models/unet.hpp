#pragma once
// The denoiser network of ../shared/spec/unet.md: a conditional UNet built from the kernel
// library. Parameters live in one flat buffer described by a ParamTable whose names match the
// PyTorch reference model (tests/fixtures/torch_unet.py); activations live in one workspace
// sized by prepare(batch), so forward and backward allocate nothing.
#include <cstdint>
#include <string>
#include <vector>

#include "core/params.hpp"
#include "core/rng.hpp"
#include "core/types.hpp"

namespace dmis::models {

struct UNetConfig {
  std::string preset = "unet-s";
  int base = 32;                  // channels at the first level; embedding width 4*base
  std::vector<int> mults{1, 2, 2};
  int n_blocks = 2;               // ResBlocks per level in the encoder (n_blocks+1 in the decoder)
  std::vector<int> attn_res{7};   // resolutions that get attention after each ResBlock
  int groups = 8;                 // GroupNorm groups
  int in_channels = 1;
  int out_channels = 1;
  int classes = 10;               // K; the class table has K+1 rows (row K: "no label")
  int resolution = 28;
  float dropout = 0.0f;           // before the second conv of every ResBlock, in training
  float gn_eps = 1e-5f;

  /// unet-s, unet-m or ddpmpp-cifar; throws InputError naming the known presets.
  static UNetConfig from_preset(const std::string& name);
  static std::vector<std::string> preset_names();
  /// Throws InputError naming the offending field and why.
  void validate() const;
  int emb_dim() const { return 4 * base; }
  std::string describe() const;
};

/// The parameter table of a configuration (names, shapes, offsets).
ParamTable unet_param_table(const UNetConfig& cfg);

/// How parameters are initialised.
enum class InitScheme {
  Torch,  // PyTorch defaults: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), GroupNorm (1, 0), table N(0, 1)
  Adm,    // as Torch, but the last conv of every ResBlock, attention's output projection and the
          // head start at zero (ADM/EDM practice: each block starts as the identity)
};

/// Fills params (flat, table layout) deterministically from `seed` on `exec`.
template <class Exec, class T>
void init_params(const Exec& exec, const UNetConfig& cfg, const ParamTable& table,
                 const Tensor1<T, Exec>& params, uint64_t seed, InitScheme scheme);

namespace detail {
struct ConvRef {
  size_t w = 0, b = 0;
  int cin = 0, cout = 0, k = 3, stride = 1;
};
struct LinRef {
  size_t w = 0, b = 0;
  int in = 0, out = 0;
};
struct NormRef {
  size_t g = 0, b = 0;
  int c = 0;
};
enum class NodeKind { ConvIn, ResBlock, Attention, Downsample, Upsample, Concat, Head };
/// A residual block's parameters: GroupNorm + SiLU, conv1 (3x3), + the embedding's projection
/// per channel, GroupNorm + SiLU, (dropout), conv2 (3x3; zero at the start under ADM), plus the
/// input through `skip` (a 1x1 conv) where the channels change, else as it is.
struct ResBlockRefs {
  NormRef norm1, norm2;
  ConvRef conv1, conv2, skip;
  LinRef emb;
  bool has_skip = false;
};
/// A self-attention block's: GroupNorm (no activation), the qkv projection (1x1 conv, 3C
/// outputs), the output projection (1x1 conv; zero at the start under ADM), plus the input.
struct AttentionRefs {
  NormRef norm;
  ConvRef qkv, proj;
};
/// One node of the network's plan; the members of its kind are set, the others stay empty.
struct Node {
  NodeKind kind;
  std::string name;
  int in = -1, in2 = -1, out = -1;  // activation ids
  ConvRef conv;          // ConvIn, Downsample (stride 2), Upsample (after the 2x), Head
  NormRef norm;          // Head: its GroupNorm + SiLU before the conv
  ResBlockRefs res;      // ResBlock
  AttentionRefs attn;    // Attention
};
struct ActShape {
  int C, H, W;
};
}  // namespace detail

/// Where the network's input, conditioning and output live for one call.
template <class Exec, class T>
struct UNetIO {
  Tensor4<const T, Exec> x;          // (B, C_in, R, R): c_in * x_sigma
  Tensor1<const T, Exec> c_noise;    // (B): ln(sigma) / 4
  Tensor1<const int, Exec> labels;   // (B): in [0, K]; K = no label
};

/// Dropout randomness: keyed by (seed, step, global sample index), regenerated in backward.
struct DropoutKey {
  uint64_t seed = 0;
  uint32_t step = 0;
  rng::SampleIds ids;  // global sample indices of the local batch
};

template <class Exec, class T = float>
class UNet {
public:
  explicit UNet(const UNetConfig& cfg);
  const UNetConfig& config() const { return m_cfg; }
  const ParamTable& table() const { return m_table; }

  /// Sizes and allocates the workspace for batch B (outside the hot path). `conv_scratch_mb`
  /// caps the im2col scratch; convolutions process the batch in chunks that fit. With
  /// `inference_only`, no gradient buffers are allocated and backward() is refused.
  void prepare(int batch, double conv_scratch_mb = 0, bool inference_only = false);
  int batch() const { return m_batch; }
  bool inference_only() const { return m_inference_only; }
  size_t workspace_bytes() const { return m_ws.span() * sizeof(T); }

  /// F = net(io) into output(). With `train`, dropout is applied (if configured).
  void forward(const Exec& exec, const Tensor1<const T, Exec>& params, const UNetIO<Exec, T>& io,
               bool train, const DropoutKey& key = {});
  /// (B, C_out, R, R): the last forward's F.
  Tensor4<T, Exec> output() const { return m_act[m_out_id]; }
  /// grads += d(loss)/d(params) given dF = d(loss)/dF of the last forward (same io, params).
  void backward(const Exec& exec, const Tensor1<const T, Exec>& params, const UNetIO<Exec, T>& io,
                const Tensor4<const T, Exec>& dF, const Tensor1<T, Exec>& grads,
                const DropoutKey& key = {});

  /// Multiply-adds x 2 of one sample's forward pass (convolutions, dense layers, attention).
  double forward_flops_per_sample() const;
  /// Same for backward (input and weight gradients).
  double backward_flops_per_sample() const;

private:
  using X = Tensor4<T, Exec>;
  using CX = Tensor4<const T, Exec>;
  using M = Tensor2<T, Exec>;
  using V1 = Tensor1<T, Exec>;

  struct NodeBuffers {
    X s1, h1, s2, a, qkv, hatt, up;  // saved activations (which ones depends on the node)
    Tensor3<T, Exec> attn;           // (B, N, N) attention probabilities
    M mean1, rstd1, mean2, rstd2;    // (B, G) GroupNorm statistics
    M e;                             // (B, C) embedding projection
    // training only: the 3x3 stride-1 convolutions' row-unfolded inputs, kept from forward for
    // backward (kernels::Conv2d::saved_size; empty where not row-unfolded): conv (ConvIn,
    // Upsample, Head) or conv1, and conv2 (ResBlock)
    V1 rows1, rows2;
  };

  template <class Alloc>
  void layout(Alloc& alloc);
  void build_plan();

  UNetConfig m_cfg;
  ParamTable m_table;
  std::vector<detail::Node> m_nodes;
  std::vector<detail::ActShape> m_shapes;  // per activation id
  int m_out_id = -1;
  detail::LinRef m_lin1, m_lin2;
  size_t m_class_table = 0;

  int m_batch = 0;
  double m_conv_scratch_mb = 0;
  bool m_inference_only = false;
  Buffer1<T, Exec> m_ws;          // the workspace: every tensor below is a view into it
  std::vector<X> m_act, m_grad;   // per activation id: value and gradient
  std::vector<NodeBuffers> m_buf; // per node
  M m_sin, m_e1, m_se1, m_emb, m_semb;   // embedding path (B, base) / (B, 4 base)
  M m_dsemb, m_demb, m_dse1;             // their gradients
  X m_tmp1, m_tmp2;                      // backward temporaries, the largest activation each
  V1 m_scratch;                          // kernel scratch (im2col, GroupNorm, attention)
  std::vector<char> m_written;           // backward: which gradients have been written
  bool m_dropout_applied = false;        // the last forward applied dropout
};

}  // namespace dmis::models

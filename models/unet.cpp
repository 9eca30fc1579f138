#include "models/unet.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "kernels/activation.hpp"
#include "kernels/attention.hpp"
#include "kernels/conv2d.hpp"
#include "kernels/dropout.hpp"
#include "kernels/embedding.hpp"
#include "kernels/eti.hpp"
#include "kernels/groupnorm.hpp"
#include "kernels/linear.hpp"
#include "kernels/tensor_ops.hpp"

namespace dmis::models {

using detail::ActShape;
using detail::ConvRef;
using detail::LinRef;
using detail::Node;
using detail::NodeKind;
using detail::NormRef;

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

std::vector<std::string> UNetConfig::preset_names() { return {"unet-s", "unet-m", "ddpmpp-cifar"}; }

UNetConfig UNetConfig::from_preset(const std::string& name) {
  UNetConfig c;
  c.preset = name;
  if (name == "unet-s") {
    c.base = 32, c.mults = {1, 2, 2}, c.n_blocks = 2, c.attn_res = {7}, c.groups = 8;
    c.in_channels = c.out_channels = 1, c.classes = 10, c.resolution = 28;
  } else if (name == "unet-m") {
    c.base = 64, c.mults = {1, 2, 2}, c.n_blocks = 2, c.attn_res = {7, 14}, c.groups = 32;
    c.in_channels = c.out_channels = 1, c.classes = 10, c.resolution = 28;
  } else if (name == "ddpmpp-cifar") {
    c.base = 128, c.mults = {2, 2, 2}, c.n_blocks = 4, c.attn_res = {16}, c.groups = 32;
    c.in_channels = c.out_channels = 3, c.classes = 10, c.resolution = 32;
  } else {
    std::string known;
    for (const auto& n : preset_names()) known += (known.empty() ? "" : ", ") + n;
    throw InputError(cat("unknown network preset '", name, "' (known: ", known, ")"));
  }
  return c;
}

void UNetConfig::validate() const {
  auto need = [&](bool ok, const std::string& what) {
    if (!ok) throw InputError(cat("network '", preset, "': ", what));
  };
  need(base > 0, cat("base must be > 0, got ", base));
  need(!mults.empty(), "mults must list at least one level");
  for (int m : mults) need(m > 0, cat("every mult must be > 0, got ", m));
  need(n_blocks >= 1, cat("n_blocks must be >= 1, got ", n_blocks));
  need(groups >= 1, cat("groups must be >= 1, got ", groups));
  need(in_channels >= 1 && out_channels >= 1,
       cat("channels must be >= 1, got in ", in_channels, ", out ", out_channels));
  need(classes >= 1, cat("classes must be >= 1, got ", classes));
  need(dropout >= 0 && dropout < 1, cat("dropout must be in [0, 1), got ", dropout));
  const int down = 1 << (mults.size() - 1);
  need(resolution > 0 && resolution % down == 0,
       cat("resolution ", resolution, " must be divisible by 2^(levels-1) = ", down,
           " so that down- and upsampling meet"));
  // attention at a resolution no level has would be silently ignored
  std::string levels;
  for (size_t i = 0; i < mults.size(); ++i) levels += cat(i ? ", " : "", resolution >> i);
  for (int r : attn_res) {
    bool found = false;
    for (size_t i = 0; i < mults.size(); ++i) found = found || r == (resolution >> i);
    need(found, cat("attn_res: no level has resolution ", r, " (the levels: ", levels, ")"));
  }
}

std::string UNetConfig::describe() const {
  std::ostringstream os;
  os << preset << ": base " << base << ", mults [";
  for (size_t i = 0; i < mults.size(); ++i) os << (i ? ", " : "") << mults[i];
  os << "], n_blocks " << n_blocks << ", attn_res [";
  for (size_t i = 0; i < attn_res.size(); ++i) os << (i ? ", " : "") << attn_res[i];
  os << "], groups " << groups << ", channels " << in_channels << " -> " << out_channels
     << ", classes " << classes << ", resolution " << resolution << ", dropout " << dropout;
  return os.str();
}

// ---------------------------------------------------------------------------------------------
// The plan: parameter table, nodes and activation shapes, in forward order.
// ---------------------------------------------------------------------------------------------

namespace {

struct PlanBuilder {
  const UNetConfig& cfg;
  ParamTable& table;
  std::vector<Node>& nodes;
  std::vector<ActShape>& shapes;

  int act(int C, int H, int W) {
    shapes.push_back({C, H, W});
    return static_cast<int>(shapes.size()) - 1;
  }
  ConvRef conv(const std::string& name, int cin, int cout, int k, int stride,
               ParamInit init = ParamInit::FanInUniform) {
    ConvRef r;
    const size_t fan_in = static_cast<size_t>(cin) * k * k;
    r.w = table.add(name + ".weight", {cout, cin, k, k}, init, fan_in);
    r.b = table.add(name + ".bias", {cout}, init, fan_in);
    r.cin = cin, r.cout = cout, r.k = k, r.stride = stride;
    return r;
  }
  LinRef lin(const std::string& name, int in, int out) {
    LinRef r;
    r.w = table.add(name + ".weight", {out, in}, ParamInit::FanInUniform, in);
    r.b = table.add(name + ".bias", {out}, ParamInit::FanInUniform, in);
    r.in = in, r.out = out;
    return r;
  }
  NormRef norm(const std::string& name, int c) {
    if (c % cfg.groups != 0)
      throw InputError(cat("network '", cfg.preset, "': GroupNorm '", name, "' has ", c,
                           " channels, not a multiple of groups = ", cfg.groups));
    NormRef r;
    r.g = table.add(name + ".weight", {c}, ParamInit::Ones);
    r.b = table.add(name + ".bias", {c}, ParamInit::Zeros);
    r.c = c;
    return r;
  }
  int resblock(const std::string& name, int in, int cout) {
    const ActShape s = shapes[in];
    Node n;
    n.kind = NodeKind::ResBlock;
    n.name = name;
    n.in = in;
    n.res.norm1 = norm(name + ".norm1", s.C);
    n.res.conv1 = conv(name + ".conv1", s.C, cout, 3, 1);
    n.res.emb = lin(name + ".emb_proj", cfg.emb_dim(), cout);
    n.res.norm2 = norm(name + ".norm2", cout);
    n.res.conv2 = conv(name + ".conv2", cout, cout, 3, 1, ParamInit::ZeroUnderAdm);
    n.res.has_skip = s.C != cout;
    if (n.res.has_skip) n.res.skip = conv(name + ".skip", s.C, cout, 1, 1);
    n.out = act(cout, s.H, s.W);
    nodes.push_back(n);
    return n.out;
  }
  int attention(const std::string& name, int in) {
    const ActShape s = shapes[in];
    Node n;
    n.kind = NodeKind::Attention;
    n.name = name;
    n.in = in;
    n.attn.norm = norm(name + ".norm", s.C);
    n.attn.qkv = conv(name + ".qkv", s.C, 3 * s.C, 1, 1);
    n.attn.proj = conv(name + ".proj", s.C, s.C, 1, 1, ParamInit::ZeroUnderAdm);
    n.out = act(s.C, s.H, s.W);
    nodes.push_back(n);
    return n.out;
  }
};

bool has_attention(const UNetConfig& cfg, int res) {
  return std::find(cfg.attn_res.begin(), cfg.attn_res.end(), res) != cfg.attn_res.end();
}

}  // namespace

ParamTable unet_param_table(const UNetConfig& cfg) {
  UNet<HostExec, float> net(cfg);
  return net.table();
}

template <class Exec, class T>
UNet<Exec, T>::UNet(const UNetConfig& cfg) : m_cfg(cfg) {
  m_cfg.validate();
  build_plan();
}

template <class Exec, class T>
void UNet<Exec, T>::build_plan() {
  const UNetConfig& c = m_cfg;
  PlanBuilder pb{c, m_table, m_nodes, m_shapes};
  const int E = c.emb_dim();
  m_lin1 = pb.lin("emb.lin1", c.base, E);
  m_lin2 = pb.lin("emb.lin2", E, E);
  m_class_table = m_table.add("emb.class_table.weight", {c.classes + 1, E}, ParamInit::Normal);

  int res = c.resolution;
  Node in;
  in.kind = NodeKind::ConvIn;
  in.name = "conv_in";
  in.conv = pb.conv("conv_in", c.in_channels, c.base, 3, 1);
  in.out = pb.act(c.base, res, res);
  m_nodes.push_back(in);
  int cur = in.out;
  std::vector<int> skips{cur};

  const int levels = static_cast<int>(c.mults.size());
  for (int i = 0; i < levels; ++i) {
    for (int j = 0; j < c.n_blocks; ++j) {
      const std::string p = cat("enc.", i, ".");
      cur = pb.resblock(p + cat("block", j), cur, c.base * c.mults[i]);
      if (has_attention(c, res)) cur = pb.attention(p + cat("attn", j), cur);
      skips.push_back(cur);
    }
    if (i != levels - 1) {
      const int ch = m_shapes[cur].C;
      Node d;
      d.kind = NodeKind::Downsample;
      d.name = cat("enc.", i, ".down");
      d.in = cur;
      d.conv = pb.conv(d.name, ch, ch, 3, 2);
      res /= 2;
      d.out = pb.act(ch, res, res);
      m_nodes.push_back(d);
      cur = d.out;
      skips.push_back(cur);
    }
  }
  const int mid_ch = m_shapes[cur].C;
  cur = pb.resblock("mid.block0", cur, mid_ch);
  cur = pb.attention("mid.attn", cur);
  cur = pb.resblock("mid.block1", cur, mid_ch);

  for (int i = levels - 1; i >= 0; --i) {
    for (int j = 0; j < c.n_blocks + 1; ++j) {
      const int skip = skips.back();
      skips.pop_back();
      Node cn;
      cn.kind = NodeKind::Concat;
      cn.name = cat("dec.", i, ".concat", j);
      cn.in = cur;
      cn.in2 = skip;
      cn.out = pb.act(m_shapes[cur].C + m_shapes[skip].C, res, res);
      m_nodes.push_back(cn);
      const std::string p = cat("dec.", i, ".");
      cur = pb.resblock(p + cat("block", j), cn.out, c.base * c.mults[i]);
      if (has_attention(c, res)) cur = pb.attention(p + cat("attn", j), cur);
    }
    if (i != 0) {
      const int ch = m_shapes[cur].C;
      Node u;
      u.kind = NodeKind::Upsample;
      u.name = cat("dec.", i, ".up");
      u.in = cur;
      u.conv = pb.conv(u.name, ch, ch, 3, 1);
      res *= 2;
      u.out = pb.act(ch, res, res);
      m_nodes.push_back(u);
      cur = u.out;
    }
  }
  Node h;
  h.kind = NodeKind::Head;
  h.name = "out";
  h.in = cur;
  h.norm = pb.norm("out.norm", m_shapes[cur].C);
  h.conv = pb.conv("out.conv", m_shapes[cur].C, c.out_channels, 3, 1, ParamInit::ZeroUnderAdm);
  h.out = pb.act(c.out_channels, res, res);
  m_nodes.push_back(h);
  m_out_id = h.out;
  m_written.assign(m_shapes.size() + 1, 0);  // one flag per activation, plus the embedding
}

// ---------------------------------------------------------------------------------------------
// FLOP counts (2 x multiply-adds of convolutions, dense layers and attention products).
// ---------------------------------------------------------------------------------------------

namespace {
double conv_flops(const ConvRef& c, int Ho, int Wo) {
  return 2.0 * c.cout * c.cin * c.k * c.k * Ho * Wo;
}
}  // namespace

template <class Exec, class T>
double UNet<Exec, T>::forward_flops_per_sample() const {
  double f = 2.0 * (m_lin1.in * m_lin1.out + m_lin2.in * m_lin2.out);
  for (const auto& n : m_nodes) {
    const ActShape o = m_shapes[n.out];
    switch (n.kind) {
      case NodeKind::ConvIn:
      case NodeKind::Downsample:
      case NodeKind::Upsample:
      case NodeKind::Head: f += conv_flops(n.conv, o.H, o.W); break;
      case NodeKind::ResBlock:
        f += conv_flops(n.res.conv1, o.H, o.W) + conv_flops(n.res.conv2, o.H, o.W) +
             2.0 * n.res.emb.in * n.res.emb.out + (n.res.has_skip ? conv_flops(n.res.skip, o.H, o.W) : 0.0);
        break;
      case NodeKind::Attention: {
        const double N = o.H * o.W;
        f += conv_flops(n.attn.qkv, o.H, o.W) + conv_flops(n.attn.proj, o.H, o.W) + 2 * 2.0 * N * N * o.C;
        break;
      }
      case NodeKind::Concat: break;
    }
  }
  return f;
}

template <class Exec, class T>
double UNet<Exec, T>::backward_flops_per_sample() const {
  // input and weight gradients of every product; conv_in needs no input gradient
  const ActShape o = m_shapes[m_nodes.front().out];
  return 2.0 * forward_flops_per_sample() - conv_flops(m_nodes.front().conv, o.H, o.W) -
         2.0 * m_lin1.in * m_lin1.out;
}

// ---------------------------------------------------------------------------------------------
// Workspace
// ---------------------------------------------------------------------------------------------

namespace {
// Hands out consecutive slices of one buffer. The same layout code runs twice: first to measure
// (base == nullptr), then to bind views to the allocated workspace.
template <class T, class Exec>
struct Carver {
  T* base = nullptr;
  size_t used = 0;
  int B = 0;
  T* take(size_t n) {
    const size_t at = used;
    used += (n + 63) / 64 * 64;  // 256-byte aligned slices
    return base ? base + at : nullptr;
  }
  Tensor4<T, Exec> t4(int C, int H, int W) {
    return Tensor4<T, Exec>(take(static_cast<size_t>(B) * C * H * W), B, C, H, W);
  }
  Tensor3<T, Exec> t3(int a, int b) {
    return Tensor3<T, Exec>(take(static_cast<size_t>(B) * a * b), B, a, b);
  }
  Tensor2<T, Exec> t2(int a) { return Tensor2<T, Exec>(take(static_cast<size_t>(B) * a), B, a); }
  Tensor1<T, Exec> t1(size_t n) { return Tensor1<T, Exec>(take(n), n); }
};
}  // namespace

template <class Exec, class T>
template <class Alloc>
void UNet<Exec, T>::layout(Alloc& a) {
  const int B = m_batch, G = m_cfg.groups, E = m_cfg.emb_dim();
  m_act.clear();
  m_grad.clear();
  size_t max_chw = 0;
  for (const auto& s : m_shapes) {
    m_act.push_back(a.t4(s.C, s.H, s.W));
    m_grad.push_back(m_inference_only ? X() : a.t4(s.C, s.H, s.W));
    max_chw = std::max(max_chw, static_cast<size_t>(s.C) * s.H * s.W);
  }
  m_buf.assign(m_nodes.size(), NodeBuffers{});
  size_t scratch = 0;
  const double budget_elems = m_conv_scratch_mb * 1024.0 * 1024.0 / sizeof(T);
  auto conv_scratch = [&](const ConvRef& c, int H, int W) {
    const auto g = kernels::Conv2dGeometry::make(B, c.cin, H, W, c.cout, c.k, c.stride);
    scratch = std::max(scratch, kernels::Conv2d<Exec, T>::scratch_within(g, budget_elems));
  };
  // a training network's kept unfolded input of a convolution (see NodeBuffers)
  auto kept_rows = [&](const ConvRef& c, int H, int W) {
    if (m_inference_only) return V1();
    const auto g = kernels::Conv2dGeometry::make(B, c.cin, H, W, c.cout, c.k, c.stride);
    const size_t n = kernels::Conv2d<Exec, T>::saved_size(g);
    return n ? a.t1(n) : V1();
  };
  for (size_t i = 0; i < m_nodes.size(); ++i) {
    const Node& n = m_nodes[i];
    NodeBuffers& nb = m_buf[i];
    const ActShape in = n.in >= 0 ? m_shapes[n.in] : ActShape{m_cfg.in_channels, 0, 0};
    const ActShape o = m_shapes[n.out];
    switch (n.kind) {
      case NodeKind::ConvIn:
        conv_scratch(n.conv, o.H, o.W);
        nb.rows1 = kept_rows(n.conv, o.H, o.W);
        break;
      case NodeKind::ResBlock:
        nb.s1 = a.t4(in.C, in.H, in.W);
        nb.h1 = a.t4(o.C, o.H, o.W);
        nb.s2 = a.t4(o.C, o.H, o.W);
        nb.mean1 = a.t2(G), nb.rstd1 = a.t2(G), nb.mean2 = a.t2(G), nb.rstd2 = a.t2(G);
        nb.e = a.t2(o.C);
        conv_scratch(n.res.conv1, in.H, in.W);
        conv_scratch(n.res.conv2, o.H, o.W);
        nb.rows1 = kept_rows(n.res.conv1, in.H, in.W);
        nb.rows2 = kept_rows(n.res.conv2, o.H, o.W);
        if (n.res.has_skip) conv_scratch(n.res.skip, in.H, in.W);
        scratch = std::max(scratch, kernels::GroupNorm<Exec, T>::scratch_size(B, in.C, G));
        break;
      case NodeKind::Attention: {
        const int N = o.H * o.W;
        nb.a = a.t4(o.C, o.H, o.W);
        nb.qkv = a.t4(3 * o.C, o.H, o.W);
        nb.hatt = a.t4(o.C, o.H, o.W);
        nb.attn = a.t3(N, N);
        nb.mean1 = a.t2(G), nb.rstd1 = a.t2(G);
        max_chw = std::max(max_chw, static_cast<size_t>(3) * o.C * o.H * o.W);
        conv_scratch(n.attn.qkv, o.H, o.W);
        conv_scratch(n.attn.proj, o.H, o.W);
        scratch = std::max(scratch, kernels::Attention<Exec, T>::scratch_size(B, N));
        scratch = std::max(scratch, kernels::GroupNorm<Exec, T>::scratch_size(B, o.C, G));
        break;
      }
      case NodeKind::Downsample: conv_scratch(n.conv, in.H, in.W); break;
      case NodeKind::Upsample:
        nb.up = a.t4(o.C, o.H, o.W);
        conv_scratch(n.conv, o.H, o.W);
        nb.rows1 = kept_rows(n.conv, o.H, o.W);
        break;
      case NodeKind::Head:
        nb.s1 = a.t4(in.C, in.H, in.W);
        nb.mean1 = a.t2(G), nb.rstd1 = a.t2(G);
        conv_scratch(n.conv, o.H, o.W);
        nb.rows1 = kept_rows(n.conv, o.H, o.W);
        scratch = std::max(scratch, kernels::GroupNorm<Exec, T>::scratch_size(B, in.C, G));
        break;
      case NodeKind::Concat: break;
    }
  }
  m_sin = a.t2(m_cfg.base);
  m_e1 = a.t2(E), m_se1 = a.t2(E), m_emb = a.t2(E), m_semb = a.t2(E);
  if (!m_inference_only) {
    m_dsemb = a.t2(E), m_demb = a.t2(E), m_dse1 = a.t2(E);
    m_tmp1 = Tensor4<T, Exec>(a.take(B * max_chw), B, static_cast<int>(max_chw), 1, 1);
    m_tmp2 = Tensor4<T, Exec>(a.take(B * max_chw), B, static_cast<int>(max_chw), 1, 1);
  }
  m_scratch = a.t1(scratch);
}

template <class Exec, class T>
void UNet<Exec, T>::prepare(int batch, double conv_scratch_mb, bool inference_only) {
  if (batch <= 0) throw InputError(cat("batch size must be > 0, got ", batch));
  m_inference_only = inference_only;
  const bool host = Kokkos::SpaceAccessibility<Kokkos::HostSpace,
                                               typename Exec::memory_space>::accessible;
  m_batch = batch;
  // Host: 12 MB keeps each chunk's unfolded input near the caches (measured on unet-s, batch 64:
  // 3 MB 896 ms, 6 MB 859, 8 MB 866, 12 MB 834, 20 MB 842 per step). Device: bigger GEMMs.
  m_conv_scratch_mb = conv_scratch_mb > 0 ? conv_scratch_mb : (host ? 12.0 : 1024.0);
  Carver<T, Exec> measure;
  measure.B = batch;
  layout(measure);
  m_ws = Buffer1<T, Exec>(Kokkos::view_alloc(Kokkos::WithoutInitializing, "dmis::unet::workspace"),
                          measure.used);
  Carver<T, Exec> bind;
  bind.B = batch;
  bind.base = m_ws.data();
  layout(bind);
}

// ---------------------------------------------------------------------------------------------
// Forward and backward
// ---------------------------------------------------------------------------------------------

namespace {
template <class T, class Exec>
struct ParamViews {
  const T* p;
  Tensor4<const T, Exec> w(const ConvRef& c) const {
    return Tensor4<const T, Exec>(p + c.w, c.cout, c.cin, c.k, c.k);
  }
  Tensor1<const T, Exec> b(const ConvRef& c) const { return Tensor1<const T, Exec>(p + c.b, c.cout); }
  Tensor2<const T, Exec> w(const LinRef& l) const {
    return Tensor2<const T, Exec>(p + l.w, l.out, l.in);
  }
  Tensor1<const T, Exec> b(const LinRef& l) const { return Tensor1<const T, Exec>(p + l.b, l.out); }
  Tensor1<const T, Exec> g(const NormRef& n) const { return Tensor1<const T, Exec>(p + n.g, n.c); }
  Tensor1<const T, Exec> bn(const NormRef& n) const {
    return Tensor1<const T, Exec>(p + n.b, n.c);
  }
};
template <class T, class Exec>
struct GradViews {
  T* p;
  Tensor4<T, Exec> w(const ConvRef& c) const {
    return Tensor4<T, Exec>(p + c.w, c.cout, c.cin, c.k, c.k);
  }
  Tensor1<T, Exec> b(const ConvRef& c) const { return Tensor1<T, Exec>(p + c.b, c.cout); }
  Tensor2<T, Exec> w(const LinRef& l) const { return Tensor2<T, Exec>(p + l.w, l.out, l.in); }
  Tensor1<T, Exec> b(const LinRef& l) const { return Tensor1<T, Exec>(p + l.b, l.out); }
  Tensor1<T, Exec> g(const NormRef& n) const { return Tensor1<T, Exec>(p + n.g, n.c); }
  Tensor1<T, Exec> bn(const NormRef& n) const { return Tensor1<T, Exec>(p + n.b, n.c); }
};
template <class V>
auto as_const(const V& v) {
  return Kokkos::View<typename V::const_data_type, typename V::array_layout,
                      typename V::device_type, typename V::memory_traits>(v);
}
}  // namespace

template <class Exec, class T>
void UNet<Exec, T>::forward(const Exec& exec, const Tensor1<const T, Exec>& params,
                            const UNetIO<Exec, T>& io, bool train, const DropoutKey& key) {
  const char* op = "dmis::unet::forward";
  const int B = m_batch, R = m_cfg.resolution;
  if (B == 0) throw Error("UNet::forward called before prepare(batch)");
  kernels::expect_shape(op, "params", params, {static_cast<long>(m_table.total())});
  kernels::expect_shape(op, "x", io.x, {B, m_cfg.in_channels, R, R});
  kernels::expect_shape(op, "c_noise", io.c_noise, {B});
  kernels::expect_shape(op, "labels", io.labels, {B});
  using Conv = kernels::Conv2d<Exec, T>;
  using GN = kernels::GroupNorm<Exec, T>;
  constexpr auto Silu = kernels::Activation::Silu, NoActivation = kernels::Activation::None;
  using Lin = kernels::Linear<Exec, T>;
  using SiLU = kernels::SiLU<Exec, T>;
  const ParamViews<T, Exec> P{params.data()};
  const T eps = static_cast<T>(m_cfg.gn_eps);
  const int G = m_cfg.groups;
  const bool dropout = train && m_cfg.dropout > 0;
  m_dropout_applied = dropout;

  // time and class embedding
  kernels::SinusoidalEmbedding<Exec, T>::forward(exec, io.c_noise, m_sin);
  Lin::forward(exec, as_const(m_sin), P.w(m_lin1), P.b(m_lin1), m_e1);
  SiLU::forward(exec, flat(as_const(m_e1)), flat(m_se1));
  Lin::forward(exec, as_const(m_se1), P.w(m_lin2), P.b(m_lin2), m_emb);
  const Tensor2<const T, Exec> table(params.data() + m_class_table, m_cfg.classes + 1,
                                     m_cfg.emb_dim());
  kernels::ClassEmbedding<Exec, T>::forward(exec, io.labels, table, m_emb, GradMode::Accumulate);
  SiLU::forward(exec, flat(as_const(m_emb)), flat(m_semb));

  for (size_t i = 0; i < m_nodes.size(); ++i) {
    const Node& n = m_nodes[i];
    NodeBuffers& nb = m_buf[i];
    const X out = m_act[n.out];
    switch (n.kind) {
      case NodeKind::ConvIn:
        Conv::forward(exec, io.x, P.w(n.conv), P.b(n.conv), 1, out, m_scratch, false, nb.rows1);
        break;
      case NodeKind::ResBlock: {
        const CX x = m_act[n.in];
        GN::forward(exec, x, P.g(n.res.norm1), P.bn(n.res.norm1), G, eps, nb.s1, nb.mean1, nb.rstd1, Silu);
        Conv::forward(exec, as_const(nb.s1), P.w(n.res.conv1), P.b(n.res.conv1), 1, nb.h1, m_scratch, false,
                      nb.rows1);
        Lin::forward(exec, as_const(m_semb), P.w(n.res.emb), P.b(n.res.emb), nb.e);
        kernels::ChannelAdd<Exec, T>::forward(exec, as_const(nb.h1), as_const(nb.e), nb.h1);
        GN::forward(exec, as_const(nb.h1), P.g(n.res.norm2), P.bn(n.res.norm2), G, eps, nb.s2, nb.mean2,
                    nb.rstd2, Silu);
        if (dropout)
          kernels::Dropout<Exec, T>::forward(exec, as_const(nb.s2), nb.s2, m_cfg.dropout,
                                             key.seed + 1000003ull * i, key.step,
                                             key.ids);
        Conv::forward(exec, as_const(nb.s2), P.w(n.res.conv2), P.b(n.res.conv2), 1, out, m_scratch, false,
                      nb.rows2);
        if (n.res.has_skip)
          Conv::forward(exec, x, P.w(n.res.skip), P.b(n.res.skip), 1, out, m_scratch, /*accumulate=*/true);
        else
          kernels::AddTo<Exec, T>::apply(exec, flat(x), flat(out), GradMode::Accumulate);
        break;
      }
      case NodeKind::Attention: {
        const CX x = m_act[n.in];
        GN::forward(exec, x, P.g(n.attn.norm), P.bn(n.attn.norm), G, eps, nb.a, nb.mean1, nb.rstd1, NoActivation);
        Conv::forward(exec, as_const(nb.a), P.w(n.attn.qkv), P.b(n.attn.qkv), 1, nb.qkv, m_scratch);
        kernels::Attention<Exec, T>::forward(exec, as_const(nb.qkv), nb.hatt, nb.attn);
        Conv::forward(exec, as_const(nb.hatt), P.w(n.attn.proj), P.b(n.attn.proj), 1, out, m_scratch);
        kernels::AddTo<Exec, T>::apply(exec, flat(x), flat(out), GradMode::Accumulate);
        break;
      }
      case NodeKind::Downsample:
        Conv::forward(exec, as_const(m_act[n.in]), P.w(n.conv), P.b(n.conv), 2, out, m_scratch);
        break;
      case NodeKind::Upsample:
        kernels::Upsample2x<Exec, T>::forward(exec, as_const(m_act[n.in]), nb.up);
        Conv::forward(exec, as_const(nb.up), P.w(n.conv), P.b(n.conv), 1, out, m_scratch, false, nb.rows1);
        break;
      case NodeKind::Concat:
        kernels::Concat<Exec, T>::forward(exec, as_const(m_act[n.in]), as_const(m_act[n.in2]),
                                          out);
        break;
      case NodeKind::Head:
        GN::forward(exec, as_const(m_act[n.in]), P.g(n.norm), P.bn(n.norm), G, eps, nb.s1,
                    nb.mean1, nb.rstd1, Silu);
        Conv::forward(exec, as_const(nb.s1), P.w(n.conv), P.b(n.conv), 1, out, m_scratch, false, nb.rows1);
        break;
    }
  }
}

template <class Exec, class T>
void UNet<Exec, T>::backward(const Exec& exec, const Tensor1<const T, Exec>& params,
                             const UNetIO<Exec, T>& io, const Tensor4<const T, Exec>& dF,
                             const Tensor1<T, Exec>& grads, const DropoutKey& key) {
  const char* op = "dmis::unet::backward";
  const int B = m_batch, R = m_cfg.resolution;
  if (B == 0) throw Error("UNet::backward called before prepare(batch)");
  if (m_inference_only) throw Error("UNet::backward called on a workspace prepared for inference");
  kernels::expect_shape(op, "params", params, {static_cast<long>(m_table.total())});
  kernels::expect_shape(op, "grads", grads, {static_cast<long>(m_table.total())});
  kernels::expect_shape(op, "dF", dF, {B, m_cfg.out_channels, R, R});
  using Conv = kernels::Conv2d<Exec, T>;
  using GN = kernels::GroupNorm<Exec, T>;
  constexpr auto Silu = kernels::Activation::Silu, NoActivation = kernels::Activation::None;
  using Lin = kernels::Linear<Exec, T>;
  using SiLU = kernels::SiLU<Exec, T>;
  const ParamViews<T, Exec> P{params.data()};
  const GradViews<T, Exec> D{grads.data()};
  const bool dropout = m_dropout_applied;
  // Each activation's gradient is overwritten by the first consumer met going backwards and
  // accumulated by the others. `written` was sized by the plan: this only resets it.
  std::vector<char>& written = m_written;
  std::fill(written.begin(), written.end(), 0);
  const size_t semb_slot = m_shapes.size();
  auto mode = [&](size_t id) {
    const GradMode m = written[id] ? GradMode::Accumulate : GradMode::Overwrite;
    written[id] = 1;
    return m;
  };
  auto tmp = [&](const X& buf, int C, int H, int W) { return X(buf.data(), B, C, H, W); };
  auto none4 = X();

  for (size_t ii = m_nodes.size(); ii-- > 0;) {
    const Node& n = m_nodes[ii];
    NodeBuffers& nb = m_buf[ii];
    const ActShape o = m_shapes[n.out];
    const CX dout = (n.out == m_out_id) ? dF : as_const(m_grad[n.out]);
    switch (n.kind) {
      case NodeKind::ConvIn:
        Conv::backward(exec, dout, io.x, P.w(n.conv), 1, none4, GradMode::Overwrite,
                       D.w(n.conv), D.b(n.conv), m_scratch, nb.rows1);
        break;
      case NodeKind::ResBlock: {
        const CX x = m_act[n.in];
        const ActShape in = m_shapes[n.in];
        const X gin = m_grad[n.in];
        if (n.res.has_skip)
          Conv::backward(exec, dout, x, P.w(n.res.skip), 1, gin, mode(n.in), D.w(n.res.skip), D.b(n.res.skip),
                         m_scratch);
        else
          kernels::AddTo<Exec, T>::apply(exec, flat(dout), flat(gin), mode(n.in));
        const X ds2 = tmp(m_tmp1, o.C, o.H, o.W);
        Conv::backward(exec, dout, as_const(nb.s2), P.w(n.res.conv2), 1, ds2, GradMode::Overwrite,
                       D.w(n.res.conv2), D.b(n.res.conv2), m_scratch, nb.rows2);
        if (dropout)
          kernels::Dropout<Exec, T>::backward(exec, as_const(ds2), ds2, GradMode::Overwrite,
                                              m_cfg.dropout, key.seed + 1000003ull * ii, key.step,
                                              key.ids);
        const X dh1 = tmp(m_tmp2, o.C, o.H, o.W);
        GN::backward(exec, as_const(ds2), as_const(nb.h1), P.g(n.res.norm2), P.bn(n.res.norm2),
                     as_const(nb.mean2), as_const(nb.rstd2), dh1, GradMode::Overwrite,
                     D.g(n.res.norm2), D.bn(n.res.norm2), m_scratch, Silu, ds2);
        kernels::ChannelAdd<Exec, T>::backward(exec, as_const(dh1), nb.e, GradMode::Overwrite);
        Lin::backward(exec, as_const(nb.e), as_const(m_semb), P.w(n.res.emb), m_dsemb,
                      mode(semb_slot), D.w(n.res.emb), D.b(n.res.emb));
        const X ds1 = tmp(m_tmp1, in.C, in.H, in.W);
        Conv::backward(exec, as_const(dh1), as_const(nb.s1), P.w(n.res.conv1), 1, ds1,
                       GradMode::Overwrite, D.w(n.res.conv1), D.b(n.res.conv1), m_scratch, nb.rows1);
        GN::backward(exec, as_const(ds1), x, P.g(n.res.norm1), P.bn(n.res.norm1), as_const(nb.mean1),
                     as_const(nb.rstd1), gin, GradMode::Accumulate, D.g(n.res.norm1), D.bn(n.res.norm1),
                     m_scratch, Silu, ds1);
        break;
      }
      case NodeKind::Attention: {
        const CX x = m_act[n.in];
        const X gin = m_grad[n.in];
        kernels::AddTo<Exec, T>::apply(exec, flat(dout), flat(gin), mode(n.in));
        const X dh = tmp(m_tmp1, o.C, o.H, o.W);
        Conv::backward(exec, dout, as_const(nb.hatt), P.w(n.attn.proj), 1, dh, GradMode::Overwrite,
                       D.w(n.attn.proj), D.b(n.attn.proj), m_scratch);
        const X dqkv = tmp(m_tmp2, 3 * o.C, o.H, o.W);
        kernels::Attention<Exec, T>::backward(exec, as_const(dh), as_const(nb.qkv),
                                              as_const(nb.attn), dqkv, GradMode::Overwrite,
                                              m_scratch);
        const X da = tmp(m_tmp1, o.C, o.H, o.W);
        Conv::backward(exec, as_const(dqkv), as_const(nb.a), P.w(n.attn.qkv), 1, da,
                       GradMode::Overwrite, D.w(n.attn.qkv), D.b(n.attn.qkv), m_scratch);
        GN::backward(exec, as_const(da), x, P.g(n.attn.norm), P.bn(n.attn.norm), as_const(nb.mean1),
                     as_const(nb.rstd1), gin, GradMode::Accumulate, D.g(n.attn.norm), D.bn(n.attn.norm),
                     m_scratch, NoActivation);
        break;
      }
      case NodeKind::Downsample:
        Conv::backward(exec, dout, as_const(m_act[n.in]), P.w(n.conv), 2, m_grad[n.in],
                       mode(n.in), D.w(n.conv), D.b(n.conv), m_scratch);
        break;
      case NodeKind::Upsample: {
        const X dup = tmp(m_tmp1, o.C, o.H, o.W);
        Conv::backward(exec, dout, as_const(nb.up), P.w(n.conv), 1, dup, GradMode::Overwrite,
                       D.w(n.conv), D.b(n.conv), m_scratch, nb.rows1);
        kernels::Upsample2x<Exec, T>::backward(exec, as_const(dup), m_grad[n.in], mode(n.in));
        break;
      }
      case NodeKind::Concat: {
        const GradMode ma = mode(n.in);
        const GradMode mb = mode(n.in2);
        kernels::Concat<Exec, T>::backward(exec, dout, m_grad[n.in], ma, m_grad[n.in2], mb);
        break;
      }
      case NodeKind::Head: {
        const ActShape in = m_shapes[n.in];
        const X ds = tmp(m_tmp1, in.C, in.H, in.W);
        Conv::backward(exec, dout, as_const(nb.s1), P.w(n.conv), 1, ds, GradMode::Overwrite,
                       D.w(n.conv), D.b(n.conv), m_scratch, nb.rows1);
        GN::backward(exec, as_const(ds), as_const(m_act[n.in]), P.g(n.norm), P.bn(n.norm),
                     as_const(nb.mean1), as_const(nb.rstd1), m_grad[n.in], mode(n.in),
                     D.g(n.norm), D.bn(n.norm), m_scratch, Silu, ds);
        break;
      }
    }
  }
  // embedding path
  SiLU::backward(exec, flat(as_const(m_dsemb)), flat(as_const(m_emb)), flat(m_demb),
                 GradMode::Overwrite);
  const Tensor2<T, Exec> dtable(grads.data() + m_class_table, m_cfg.classes + 1, m_cfg.emb_dim());
  kernels::ClassEmbedding<Exec, T>::backward(exec, as_const(m_demb), io.labels, dtable);
  Lin::backward(exec, as_const(m_demb), as_const(m_se1), P.w(m_lin2), m_dse1, GradMode::Overwrite,
                D.w(m_lin2), D.b(m_lin2));
  SiLU::backward(exec, flat(as_const(m_dse1)), flat(as_const(m_e1)), flat(m_dse1),
                 GradMode::Overwrite);
  Lin::backward(exec, as_const(m_dse1), as_const(m_sin), P.w(m_lin1), Tensor2<T, Exec>(),
                GradMode::Overwrite, D.w(m_lin1), D.b(m_lin1));
}

// ---------------------------------------------------------------------------------------------
// Initialisation
// ---------------------------------------------------------------------------------------------

namespace {
// How init_params fills a tensor (namespace scope: CUDA lambdas cannot capture local types).
enum InitKind : int { kInitUniform = 0, kInitConstant = 1, kInitNormal = 2 };
}  // namespace

template <class Exec, class T>
void init_params(const Exec& exec, const UNetConfig& cfg, const ParamTable& table,
                 const Tensor1<T, Exec>& params, uint64_t seed, InitScheme scheme) {
  kernels::expect_shape("dmis::unet::init", "params", params, {static_cast<long>(table.total())});
  const auto& entries = table.entries();
  for (size_t idx = 0; idx < entries.size(); ++idx) {
    const ParamInfo& p = entries[idx];
    // the rule declared with the tensor (PlanBuilder: conv, lin, norm, the class table)
    InitKind kind = kInitUniform;
    double value = 0, bound = 0;
    switch (p.init) {
      case ParamInit::Ones: kind = kInitConstant, value = 1; break;
      case ParamInit::Zeros: kind = kInitConstant, value = 0; break;
      case ParamInit::Normal: kind = kInitNormal; break;
      case ParamInit::ZeroUnderAdm:
      case ParamInit::FanInUniform:
        if (p.fan_in == 0)
          throw Error(cat("dmis::unet::init: tensor '", p.name, "' has no fan-in (a table read from a file?)"));
        bound = 1.0 / std::sqrt(static_cast<double>(p.fan_in));
        if (p.init == ParamInit::ZeroUnderAdm && scheme == InitScheme::Adm) kind = kInitConstant, value = 0;
        break;
    }
    T* dst = params.data() + p.offset;
    const rng::Philox gen(seed, rng::kInit);
    const uint32_t tensor = static_cast<uint32_t>(idx);
    const T v = static_cast<T>(value), bd = static_cast<T>(bound);
    Kokkos::parallel_for(
        "dmis::unet::init", Kokkos::RangePolicy<Exec>(exec, 0, p.numel), KOKKOS_LAMBDA(size_t i) {
          if (kind == kInitConstant)
            dst[i] = v;
          else if (kind == kInitNormal)
            dst[i] = rng::normal<T>(gen, tensor, 0u, static_cast<uint32_t>(i));
          else
            dst[i] = bd * (T(2) * rng::uniform<T>(gen, tensor, 0u, static_cast<uint32_t>(i)) - T(1));
        });
  }
  (void)cfg;
}

#define DMIS_INST(E, T)                                                                          \
  template class UNet<E, T>;                                                                     \
  template void init_params<E, T>(const E&, const UNetConfig&, const ParamTable&,                \
                                  const Tensor1<T, E>&, uint64_t, InitScheme);
DMIS_FOR_EACH_EXEC_AND_SCALAR(DMIS_INST)
#undef DMIS_INST

}  // namespace dmis::models

#pragma once
// The parameter layout: one named table of tensors (name, shape, offset), shared by the flat
// buffers of parameters, gradients, Adam moments and the EMA copy, so that the optimizer, EMA,
// gradient all-reduce and checkpoint each touch one contiguous array. Names follow the PyTorch
// reference model's state_dict, so fixtures and checkpoints map by name.
#include <Kokkos_Core.hpp>
#include <cstddef>
#include <string>
#include <vector>

#include "core/types.hpp"

namespace dmis {

/// How a tensor starts (models::init_params), said where it is declared: uniform in
/// +-1 / sqrt(fan_in) (PyTorch's default for convolutions and linear layers, their biases with
/// the weight's fan-in), ones and zeros (a norm's scale and shift), N(0, 1) (an embedding
/// table), or zero under the ADM scheme and uniform otherwise (the last layer of each residual
/// branch and the head: each block starts as the identity).
enum class ParamInit { FanInUniform, Ones, Zeros, Normal, ZeroUnderAdm };

struct ParamInfo {
  std::string name;
  std::vector<int> shape;
  size_t offset = 0;
  size_t numel = 0;
  ParamInit init = ParamInit::FanInUniform;
  size_t fan_in = 0;  // FanInUniform, ZeroUnderAdm: the layer's inputs per output
};

class ParamTable {
public:
  /// Appends a tensor; returns its offset in the flat buffers. Names must be unique.
  /// `init` and `fan_in` say how init_params fills it (a table read from a file needs neither).
  size_t add(const std::string& name, const std::vector<int>& shape,
             ParamInit init = ParamInit::FanInUniform, size_t fan_in = 0);
  const std::vector<ParamInfo>& entries() const { return m_entries; }
  /// Throws if absent.
  const ParamInfo& at(const std::string& name) const;
  const ParamInfo* find(const std::string& name) const;
  size_t total() const { return m_total; }
  /// "name  shape  offset" lines and the total.
  std::string describe() const;
  /// The first difference from another table ("" when identical): name, shape or order.
  std::string first_difference(const ParamTable& other) const;

private:
  std::vector<ParamInfo> m_entries;
  size_t m_total = 0;
};

/// The flat buffers of one model, allocated once.
template <class Exec, class T = float>
struct ParamStore {
  Buffer1<T, Exec> params, grads, adam_m, adam_v, ema;
  ParamTable table;

  ParamStore() = default;
  explicit ParamStore(const ParamTable& t, bool with_optimizer = true);
  size_t size() const { return table.total(); }

  Tensor1<T, Exec> view(const Buffer1<T, Exec>& buf, const ParamInfo& p) const {
    return Tensor1<T, Exec>(buf.data() + p.offset, p.numel);
  }
};

}  // namespace dmis

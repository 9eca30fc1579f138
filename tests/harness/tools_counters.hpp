#pragma once
// Kokkos Tools callbacks that record what a region of code does: allocations, deep copies,
// fences and the labels of every kernel it launches. Used to prove that kernels and the training
// step allocate, copy and fence nothing, and that every label starts with "dmis::".
#include <Kokkos_Core.hpp>
#include <cstdint>
#include <string>
#include <vector>

namespace dmis::test {

struct ToolEvents {
  std::vector<std::string> allocations;  // labels
  std::vector<std::string> deep_copies;  // "dst <- src"
  std::vector<std::string> fences;       // names
  std::vector<std::string> kernels;      // parallel_for / reduce / scan labels
  bool recording = false;
  void clear() {
    allocations.clear();
    deep_copies.clear();
    fences.clear();
    kernels.clear();
  }
};

inline ToolEvents& tool_events() {
  static ToolEvents ev;
  return ev;
}

namespace detail {
inline void on_kernel(const char* name, uint32_t, uint64_t* id) {
  *id = 0;
  if (tool_events().recording) tool_events().kernels.emplace_back(name);
}
inline void on_alloc(Kokkos::Profiling::SpaceHandle, const char* label, const void*, uint64_t) {
  if (tool_events().recording) tool_events().allocations.emplace_back(label);
}
inline void on_copy(Kokkos::Profiling::SpaceHandle, const char* dst, const void*,
                    Kokkos::Profiling::SpaceHandle, const char* src, const void*, uint64_t) {
  if (tool_events().recording) tool_events().deep_copies.push_back(std::string(dst) + " <- " + src);
}
// Kokkos 4 fences around every tool callback unless the tool said otherwise at initialisation
// ("Kokkos Profile Tool Fence"): those fences exist only because this recorder is attached, so
// they are not counted. Every other fence is.
inline bool is_tool_induced_fence(const char* name) {
  return std::string(name).find("Kokkos Profile Tool Fence") != std::string::npos;
}
inline void on_fence(const char* name, uint32_t, uint64_t* id) {
  *id = 0;
  if (tool_events().recording && !is_tool_induced_fence(name))
    tool_events().fences.emplace_back(name);
}
}  // namespace detail

/// Installs the callbacks for its lifetime; events are recorded between start() and stop().
class ToolRecorder {
public:
  ToolRecorder() {
    namespace kt = Kokkos::Tools::Experimental;
    kt::set_begin_parallel_for_callback(detail::on_kernel);
    kt::set_begin_parallel_reduce_callback(detail::on_kernel);
    kt::set_begin_parallel_scan_callback(detail::on_kernel);
    kt::set_allocate_data_callback(detail::on_alloc);
    kt::set_begin_deep_copy_callback(detail::on_copy);
    kt::set_begin_fence_callback(detail::on_fence);
  }
  ~ToolRecorder() {
    namespace kt = Kokkos::Tools::Experimental;
    stop();
    kt::set_begin_parallel_for_callback(nullptr);
    kt::set_begin_parallel_reduce_callback(nullptr);
    kt::set_begin_parallel_scan_callback(nullptr);
    kt::set_allocate_data_callback(nullptr);
    kt::set_begin_deep_copy_callback(nullptr);
    kt::set_begin_fence_callback(nullptr);
  }
  void start() {
    tool_events().clear();
    tool_events().recording = true;
  }
  void stop() { tool_events().recording = false; }
  const ToolEvents& events() const { return tool_events(); }
};

/// Joins a list for failure messages.
inline std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& e : v) s += (s.empty() ? "" : ", ") + e;
  return s;
}

/// Kernel labels that do not start with "dmis::". Labels from Kokkos Kernels' own kernels
/// (used when no vendor BLAS is available) are allowed: they are launched on our behalf.
inline std::vector<std::string> foreign_labels(const std::vector<std::string>& labels) {
  std::vector<std::string> bad;
  for (const auto& l : labels)
    if (l.rfind("dmis::", 0) != 0 && l.rfind("KokkosBlas::", 0) != 0) bad.push_back(l);
  return bad;
}

}  // namespace dmis::test

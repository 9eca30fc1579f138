#pragma once
// The choices of a method's deck keys as types. The deck's spellings are parsed once, when the
// plan is made (train::make_plan); everything after compares enums, and spells them back with
// name_of for the log.
#include <array>
#include <cstddef>
#include <string>

#include "core/error.hpp"
#include "methods/dmis_ops.hpp"

namespace dmis::methods {

// method.name; diffem is a pipeline of runs (train/diffem.cpp), never one MethodStep
enum class MethodKind { Vanilla, Dmis, Ambient, Diffem };
enum class NoisyTarget { Posterior, Elr };             // method.noisy_target
enum class TransitionMode { Estimate, Fixed, Known };  // method.transition
enum class ClsPush { Both, Pull };                     // method.cls_push
enum class GenObjective { Sample, Mixture };           // method.gen_objective
enum class PriorMode { Uniform, Estimate };            // method.prior
enum class ClassifierLevels { Window, Uniform };       // classify.timesteps: the noise levels
enum class EstepNetwork { Ema, Warmup };               // method.estep_network

/// The deck's spelling of each value, in the enum's order.
template <class E>
struct Choices;
template <>
struct Choices<MethodKind> {
  static constexpr std::array<const char*, 4> names{"vanilla", "dmis", "ambient", "diffem"};
};
template <>
struct Choices<NoisyTarget> {
  static constexpr std::array<const char*, 2> names{"posterior", "elr"};
};
template <>
struct Choices<TransitionMode> {
  static constexpr std::array<const char*, 3> names{"estimate", "fixed", "known"};
};
template <>
struct Choices<ClsPush> {
  static constexpr std::array<const char*, 2> names{"both", "pull"};
};
template <>
struct Choices<GenObjective> {
  static constexpr std::array<const char*, 2> names{"sample", "mixture"};
};
template <>
struct Choices<PriorMode> {
  static constexpr std::array<const char*, 2> names{"uniform", "estimate"};
};
template <>
struct Choices<ClassifierLevels> {
  static constexpr std::array<const char*, 2> names{"window", "uniform"};
};
template <>
struct Choices<EstepNetwork> {
  static constexpr std::array<const char*, 2> names{"ema", "warmup"};
};
template <>
struct Choices<dmis_ops::Supervision> {  // supervision.kind
  static constexpr const auto& names = data::kSupervisionKindNames;
};

template <class E>
const char* name_of(E e) {
  return Choices<E>::names[static_cast<size_t>(e)];
}

/// The value spelled `s`; an InputError naming `key`, the spellings and what was found else.
template <class E>
E parse_choice(const std::string& s, const char* key) {
  const auto& n = Choices<E>::names;
  for (size_t i = 0; i < n.size(); ++i)
    if (s == n[i]) return static_cast<E>(i);
  std::string list;
  for (size_t i = 0; i < n.size(); ++i)
    list += std::string(i == 0 ? "" : i + 1 == n.size() ? " or " : ", ") + n[i];
  throw InputError(cat(key, ": expected ", list, ", found '", s, "'"));
}

}  // namespace dmis::methods

#include "core/params.hpp"

#include <iomanip>
#include <sstream>

#include "core/error.hpp"

namespace dmis {

size_t ParamTable::add(const std::string& name, const std::vector<int>& shape, ParamInit init,
                       size_t fan_in) {
  if (find(name)) throw Error(cat("parameter '", name, "' declared twice"));
  ParamInfo p;
  p.name = name;
  p.shape = shape;
  p.init = init;
  p.fan_in = fan_in;
  p.numel = 1;
  for (int e : shape) p.numel *= static_cast<size_t>(e);
  p.offset = m_total;
  m_total += p.numel;
  m_entries.push_back(p);
  return p.offset;
}

const ParamInfo* ParamTable::find(const std::string& name) const {
  for (const auto& p : m_entries)
    if (p.name == name) return &p;
  return nullptr;
}

const ParamInfo& ParamTable::at(const std::string& name) const {
  const ParamInfo* p = find(name);
  if (!p) throw Error(cat("no parameter named '", name, "'"));
  return *p;
}

namespace {
std::string shape_str(const std::vector<int>& s) {
  std::ostringstream os;
  os << "(";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << ")";
  return os.str();
}
}  // namespace

std::string ParamTable::describe() const {
  size_t width = 4;
  for (const auto& p : m_entries) width = std::max(width, p.name.size());
  std::ostringstream os;
  os << std::left << std::setw(static_cast<int>(width)) << "name" << "  " << std::setw(18)
     << "shape" << std::right << std::setw(10) << "offset" << std::setw(10) << "numel" << "\n";
  for (const auto& p : m_entries)
    os << std::left << std::setw(static_cast<int>(width)) << p.name << "  " << std::setw(18)
       << shape_str(p.shape) << std::right << std::setw(10) << p.offset << std::setw(10) << p.numel
       << "\n";
  os << "total parameters: " << m_total << " in " << m_entries.size() << " tensors\n";
  return os.str();
}

std::string ParamTable::first_difference(const ParamTable& other) const {
  const size_t n = std::min(m_entries.size(), other.m_entries.size());
  for (size_t i = 0; i < n; ++i) {
    const auto& a = m_entries[i];
    const auto& b = other.m_entries[i];
    if (a.name != b.name)
      return cat("tensor ", i, " is '", a.name, "' here but '", b.name, "' there");
    if (a.shape != b.shape)
      return cat("tensor '", a.name, "' has shape ", shape_str(a.shape), " here but ",
                 shape_str(b.shape), " there");
  }
  if (m_entries.size() != other.m_entries.size())
    return cat(m_entries.size(), " tensors here but ", other.m_entries.size(), " there");
  return "";
}

template <class Exec, class T>
ParamStore<Exec, T>::ParamStore(const ParamTable& t, bool with_optimizer) : table(t) {
  const size_t n = t.total();
  params = Buffer1<T, Exec>("dmis::params::values", n);
  grads = Buffer1<T, Exec>("dmis::params::grads", n);
  if (with_optimizer) {
    adam_m = Buffer1<T, Exec>("dmis::params::adam_m", n);
    adam_v = Buffer1<T, Exec>("dmis::params::adam_v", n);
    ema = Buffer1<T, Exec>("dmis::params::ema", n);
  }
}

}  // namespace dmis

#include "kernels/eti.hpp"
namespace dmis {
#define DMIS_INST(E, T) template struct ParamStore<E, T>;
DMIS_FOR_EACH_EXEC_AND_SCALAR(DMIS_INST)
#undef DMIS_INST
}  // namespace dmis

#include "io/checkpoint.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/error.hpp"
#include "core/version.hpp"
#include "io/file_digest.hpp"
#include "io/fnv1a.hpp"
#include "io/h5.hpp"

namespace dmis::io {

namespace fs = std::filesystem;

std::string checkpoint_path(const std::string& dir, const std::string& prefix, long step) {
  char name[64];
  std::snprintf(name, sizeof name, "%s-%08ld.h5", prefix.c_str(), step);
  return (fs::path(dir) / name).string();
}

std::vector<std::string> list_checkpoints(const std::string& dir, const std::string& prefix) {
  std::vector<std::string> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    // "<prefix>-NNNNNNNN.h5" exactly: temporary files (".h5.tmp") are never complete
    if (name.size() == prefix.size() + 12 && name.rfind(prefix + "-", 0) == 0 &&
        name.compare(name.size() - 3, 3, ".h5") == 0 &&
        std::all_of(name.begin() + prefix.size() + 1, name.end() - 3, ::isdigit))
      out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

namespace {

// A digest of everything read_checkpoint returns, in a fixed order (FNV-1a over 64-bit words,
// the tail bytewise): written last, so that a file whose values were damaged after the write
// (bit flips, zeroed ranges) or whose write never finished is refused instead of read.
class Digest {
public:
  void bytes(const void* p, size_t n) {
    const auto* c = static_cast<const unsigned char*>(p);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      uint64_t w;
      std::memcpy(&w, c + i, 8);
      mix(w);
    }
    for (; i < n; ++i) mix(c[i]);
  }
  void u64(uint64_t v) { mix(v); }
  void str(const std::string& s) {
    u64(s.size());
    bytes(s.data(), s.size());
  }
  template <class T>
  void vec(const std::vector<T>& v) {
    u64(v.size());
    if (!v.empty()) bytes(v.data(), v.size() * sizeof(T));
  }
  std::string hex() const {
    char b[17];
    std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(m_fnv.h));
    return b;
  }

private:
  void mix(uint64_t w) { m_fnv.mix(w); }
  Fnv1a64 m_fnv{kFnvBasisContent};
};

std::string content_digest(const CheckpointData& d) {
  Digest g;
  g.str(d.kind);
  g.u64(static_cast<uint64_t>(d.step));
  g.bytes(&d.images_seen, sizeof d.images_seen);
  g.u64(d.seed);
  g.str(d.preset);
  g.str(d.deck);
  for (const auto& e : d.table.entries()) {
    g.str(e.name);
    g.vec(e.shape);
    g.u64(e.offset);
  }
  g.vec(d.params), g.vec(d.adam_m), g.vec(d.adam_v), g.vec(d.ema);
  g.vec(d.prior), g.vec(d.prior_counts), g.vec(d.transition), g.vec(d.logit_scale);
  if (!d.estep_params.empty()) g.vec(d.estep_params);  // absent: the digest of older files
  return g.hex();
}

}  // namespace

void write_checkpoint(const std::string& path, const CheckpointData& d) {
  h5::write_atomic(path, [&](h5::File& f) {
    f.set_attr("/", "format", std::string("dmis-checkpoint"));
    f.set_attr("/", "format_version", int64_t(3));
    f.set_attr("/", "kind", d.kind);
    f.set_attr("/", "dmis_version", std::string(version()));
    f.set_attr("/", "git", std::string(git_hash()));
    f.set_attr("/", "step", int64_t(d.step));
    f.set_attr("/", "images_seen", d.images_seen);
    f.set_attr("/", "seed", int64_t(d.seed));
    f.set_attr("/", "preset", d.preset);
    f.set_attr("/", "deck", d.deck);
    const auto& entries = d.table.entries();
    std::vector<std::string> names;
    std::vector<int32_t> shapes(entries.size() * 4, 1);
    std::vector<int32_t> ranks, offsets;
    for (size_t i = 0; i < entries.size(); ++i) {
      names.push_back(entries[i].name);
      ranks.push_back(static_cast<int32_t>(entries[i].shape.size()));
      offsets.push_back(static_cast<int32_t>(entries[i].offset));
      for (size_t r = 0; r < entries[i].shape.size() && r < 4; ++r)
        shapes[i * 4 + r] = entries[i].shape[r];
    }
    f.write("/layout/names", {names.size()}, names);
    f.write("/layout/rank", {ranks.size()}, ranks.data());
    f.write("/layout/shape", {entries.size(), 4}, shapes.data());
    f.write("/layout/offset", {offsets.size()}, offsets.data());
    f.set_attr("/layout", "total", int64_t(d.table.total()));
    auto put = [&](const char* name, const std::vector<float>& v) {
      if (!v.empty()) f.write(name, {v.size()}, v.data());
    };
    put("/params", d.params);
    put("/adam_m", d.adam_m);
    put("/adam_v", d.adam_v);
    put("/ema", d.ema);
    put("/method/prior", d.prior);
    if (!d.prior_counts.empty())
      f.write("/method/prior_counts", {d.prior_counts.size()}, d.prior_counts.data());
    if (!d.transition.empty())
      f.write("/method/transition_counts", {d.transition.size()}, d.transition.data());
    put("/method/logit_scale", d.logit_scale);
    put("/method/estep_params", d.estep_params);
    f.set_attr("/", "digest", content_digest(d));  // last: a file without it is incomplete
  }, h5::Digest::Whole);  // format 3: and the digest of the whole file's bytes in its user block
}

void check_layout(const CheckpointData& d, const std::string& path, const ParamTable& expect) {
  const std::string diff = expect.first_difference(d.table);
  if (!diff.empty())
    throw InputError(cat("checkpoint '", path, "' was written for another network layout: ", diff,
                         " (\"here\" is the network of this deck, \"there\" the checkpoint)"));
}

CheckpointData read_checkpoint(const std::string& path, const ParamTable* expect) {
  // format 3: every byte checked before HDF5 parses any (a damaged file could crash or hang it)
  const bool whole = verify_file_digest(path, "checkpoint") == FileDigest::Verified;
  const h5::File f(path, h5::File::Mode::Read);
  if (!f.has_attr("/", "format") || f.attr_string("/", "format") != "dmis-checkpoint")
    throw InputError(cat("'", path, "' is not a dmis checkpoint (its root attribute 'format' is ",
                         f.has_attr("/", "format") ? "'" + f.attr_string("/", "format") + "'"
                                                   : std::string("missing"),
                         ", expected 'dmis-checkpoint')"));
  CheckpointData d;
  d.kind = f.attr_string("/", "kind");
  d.step = static_cast<long>(f.attr_int("/", "step"));
  d.images_seen = f.attr_double("/", "images_seen");
  d.seed = static_cast<uint64_t>(f.attr_int("/", "seed"));
  if (d.kind != "training-state" && d.kind != "ema-snapshot")
    throw InputError(cat("checkpoint '", path, "': root attribute 'kind' is '", d.kind,
                         "', expected 'training-state' or 'ema-snapshot'"));
  if (d.step < 0 || !(d.images_seen >= 0))
    throw InputError(cat("checkpoint '", path, "': root attributes step ", d.step, " and images_seen ",
                         d.images_seen, ", expected both >= 0"));
  d.preset = f.attr_string("/", "preset");
  d.deck = f.attr_string("/", "deck");
  const auto names = f.read_strings("/layout/names");
  const auto ranks = f.read_int("/layout/rank").data;
  const auto shapes = f.read_int("/layout/shape").data;
  if (ranks.size() != names.size() || shapes.size() != names.size() * 4)
    throw InputError(cat("checkpoint '", path, "': /layout is inconsistent (", names.size(),
                         " names, ", ranks.size(), " ranks, ", shapes.size() / 4, " shapes)"));
  for (size_t i = 0; i < names.size(); ++i) {
    std::vector<int> shape;
    for (int r = 0; r < ranks[i]; ++r) shape.push_back(shapes[i * 4 + r]);
    d.table.add(names[i], shape);
  }
  if (expect) check_layout(d, path, *expect);
  // weights that are not finite would sample NaN images and classify at 0 % with exit 0
  auto finite = [&](const char* name, const auto& v) {
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < v.size(); ++i)
      if (!std::isfinite(static_cast<double>(v[i])) && bad++ == 0) first = i;
    if (bad)
      throw InputError(cat("checkpoint '", path, "': ", name, " holds ", bad, " of ", v.size(),
                           " values that are not finite (NaN or inf), the first at index ", first,
                           "; the file is damaged or was written by a diverged run"));
  };
  auto get = [&](const char* name, std::vector<float>& v) {
    if (!f.exists(name)) return;
    v = f.read_float(name).data;
    if (v.size() != d.table.total())
      throw InputError(cat("checkpoint '", path, "': ", name, " has ", v.size(),
                           " values, its layout needs ", d.table.total()));
    finite(name, v);
  };
  get("/params", d.params);
  get("/adam_m", d.adam_m);
  get("/adam_v", d.adam_v);
  get("/ema", d.ema);
  if (f.exists("/method/prior")) d.prior = f.read_float("/method/prior").data;
  if (f.exists("/method/prior_counts")) d.prior_counts = f.read_int("/method/prior_counts").data;
  if (f.exists("/method/transition_counts"))
    d.transition = f.read_float("/method/transition_counts").data;
  if (f.exists("/method/logit_scale")) d.logit_scale = f.read_float("/method/logit_scale").data;
  get("/method/estep_params", d.estep_params);
  finite("/method/estep_params", d.estep_params);
  finite("/method/prior", d.prior);
  finite("/method/transition_counts", d.transition);
  finite("/method/logit_scale", d.logit_scale);
  if (d.ema.empty())
    throw InputError(cat("checkpoint '", path, "' holds no /ema weights"));
  // format 2 carries the digest of its contents (format 1, written before it, does not)
  const int64_t version = f.has_attr("/", "format_version") ? f.attr_int("/", "format_version") : 1;
  if (version >= 3 && !whole)
    throw InputError(cat("checkpoint '", path, "' is damaged: it is format ", version,
                         ", whose digest header (its first 512 bytes) is missing"));
  if (version >= 2) {
    if (!f.has_attr("/", "digest"))
      throw InputError(cat("checkpoint '", path, "' has no digest: its write did not finish"));
    const std::string want = f.attr_string("/", "digest"), got = content_digest(d);
    if (want != got)
      throw InputError(cat("checkpoint '", path, "' is damaged: its contents do not match its digest (",
                           got, " against ", want, ")"));
  }
  return d;
}

}  // namespace dmis::io

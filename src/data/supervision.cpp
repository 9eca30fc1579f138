#include "data/supervision.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <numeric>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "io/h5.hpp"

namespace dmis::data {

namespace fs = std::filesystem;

namespace {

// Sub-streams of rng::kCorruption (the `step` word of the counter), one per generator, so that
// two generators with the same seed draw independent numbers. The sample index is the `sample`
// word and the draw within a sample the `index` word.
enum Draw : uint32_t {
  kDrawSymmetric = 1,
  kDrawAsymmetric = 2,
  kDrawPartialRandom = 3,
  kDrawClass50 = 4,
  kDrawUnlabeled = 5,
};

// Class-dependent ("class-50%") partial labels: inclusion probability of the wrong class at
// cyclic offset k = 1, 2, 3, 4, ... from the true class.
constexpr double kClass50Pattern[3] = {0.7, 0.5, 0.3};

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double class50_probability(int offset) {
  return kClass50Pattern[(offset - 1) % 3];
}

void check_unit_interval(const char* name, double v) {
  if (!(v >= 0.0 && v <= 1.0))
    throw InputError(cat("supervision: ", name, " must be in [0, 1], found ", v));
}

void check_config(const SupervisionConfig& c) {
  check_unit_interval("rate", c.rate);
  check_unit_interval("q", c.q);
  check_unit_interval("labeled_fraction", c.labeled_fraction);
  if (c.noise != "symmetric" && c.noise != "asymmetric")
    throw InputError(
        cat("supervision: noise must be 'symmetric' or 'asymmetric', found '", c.noise, "'"));
  if (c.partial != "random" && c.partial != "class50")
    throw InputError(
        cat("supervision: partial must be 'random' or 'class50', found '", c.partial, "'"));
}

std::vector<uint8_t> one_hot(const std::vector<int32_t>& observed, int K) {
  std::vector<uint8_t> c(observed.size() * K, 0);
  for (size_t i = 0; i < observed.size(); ++i) {
    if (observed[i] >= 0)
      c[i * K + observed[i]] = 1;
    else
      std::fill(c.begin() + i * K, c.begin() + (i + 1) * K, uint8_t(1));
  }
  return c;
}

std::string fmt(double v, int digits = 4) {
  if (std::isnan(v))
    return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string describe_config(const Supervision& s) {
  const auto& c = s.config;
  switch (s.kind) {
  case SupervisionKind::Clean:
    return "clean labels";
  case SupervisionKind::Noisy:
    return s.source == "generated" ? cat("noisy labels (", c.noise, ", rate ", c.rate, ")")
                                   : std::string("noisy labels");
  case SupervisionKind::Partial:
    return s.source == "generated"
               ? (c.partial == "random" ? cat("partial labels (random, q ", c.q, ")")
                                        : std::string("partial labels (class50: wrong "
                                                      "classes at offsets 1, 2, 3, ... join "
                                                      "with probability 0.7, 0.5, 0.3, ...)"))
               : std::string("partial labels");
  case SupervisionKind::Unlabeled:
    return s.source == "generated"
               ? cat("supplementary-unlabeled (class-balanced labelled fraction ",
                     c.labeled_fraction, ")")
               : std::string("supplementary-unlabeled");
  }
  return "?";
}

} // namespace

const char* kind_name(SupervisionKind kind) {
  return kSupervisionKindNames[static_cast<size_t>(kind)];
}

SupervisionKind parse_kind(const std::string& name) {
  for (size_t k = 0; k < kSupervisionKindNames.size(); ++k)
    if (name == kSupervisionKindNames[k]) return static_cast<SupervisionKind>(k);
  throw InputError(
      cat("unknown supervision kind '", name, "' (known: clean, noisy, partial, unlabeled)"));
}

std::vector<int> asymmetric_class_map(const std::string& dataset_name, int K) {
  std::vector<int> m(static_cast<size_t>(K));
  std::iota(m.begin(), m.end(), 0);
  auto set = [&](int from, int to) {
    if (from >= K || to >= K)
      throw InputError(cat("supervision: the asymmetric map of '", dataset_name,
                           "' needs 10 classes, the dataset has ", K));
    m[from] = to;
  };
  const std::string& n = dataset_name;
  if (n == "fashion-mnist" || n == "fashion_mnist" || n == "fmnist") {
    // DMIS: Pullover -> Sneaker, Dress -> Bag, Sandal <-> Shirt
    set(2, 7), set(3, 8), set(5, 6), set(6, 5);
  } else if (n == "cifar10" || n == "cifar-10") {
    // truck -> automobile, bird -> airplane, deer -> horse, cat <-> dog
    set(9, 1), set(2, 0), set(4, 7), set(3, 5), set(5, 3);
  } else {
    throw InputError(cat("supervision: no asymmetric class map for dataset '", dataset_name,
                         "' (known: fashion-mnist, cifar10); give one (class_map) or use "
                         "symmetric noise"));
  }
  return m;
}

void compute_stats(Supervision& s, const std::vector<int32_t>& clean) {
  const size_t N = static_cast<size_t>(s.N), K = static_cast<size_t>(s.K);
  SupervisionStats st;
  if (N == 0) {
    st.noise_rate = st.true_label_in_candidates = kNaN;
    s.stats = st;
    return;
  }
  size_t labeled = 0, set_total = 0;
  for (size_t i = 0; i < N; ++i) {
    labeled += s.labeled[i] ? 1 : 0;
    for (size_t k = 0; k < K; ++k)
      set_total += s.candidates[i * K + k] ? 1 : 0;
  }
  st.labeled_fraction = double(labeled) / N;
  st.mean_candidates = double(set_total) / N;
  if (clean.size() == N) {
    size_t with_label = 0, wrong = 0, inside = 0;
    for (size_t i = 0; i < N; ++i) {
      if (s.labeled[i] && s.observed[i] >= 0) {
        ++with_label;
        wrong += s.observed[i] != clean[i] ? 1 : 0;
      }
      inside += s.candidates[i * K + clean[i]] ? 1 : 0;
    }
    st.noise_rate = with_label ? double(wrong) / with_label : kNaN;
    st.true_label_in_candidates = double(inside) / N;
  } else {
    st.noise_rate = st.true_label_in_candidates = kNaN;
  }
  s.stats = st;
}

// The asymmetric map a config means: its own class_map, else its dataset's; checked against K.
static std::vector<int> resolved_class_map(const SupervisionConfig& c, int K) {
  const std::vector<int> map = c.class_map.empty() ? asymmetric_class_map(c.dataset_name, K) : c.class_map;
  if (map.size() != static_cast<size_t>(K))
    throw InputError(cat("supervision: class_map has ", map.size(), " entries, expected K = ", K));
  for (int k = 0; k < K; ++k)
    if (map[k] < -1 || map[k] >= K)
      throw InputError(cat("supervision: class_map[", k, "] = ", map[k], " is outside [-1, ", K, ")"));
  return map;
}

std::vector<double> noise_transition(const Supervision& sup) {
  if (sup.kind != SupervisionKind::Noisy)
    throw InputError(cat("a known label-noise transition needs noisy-label supervision, found ",
                         kind_name(sup.kind)));
  if (sup.source != "generated")
    throw InputError(cat("a known label-noise transition needs labels corrupted by dmis "
                         "(supervision.source: generate), found source '", sup.source,
                         "': a dataset's own noisy labels come from an unknown process"));
  const int K = sup.K;
  const auto& c = sup.config;
  if (K < 2) throw InputError(cat("a label-noise transition needs at least 2 classes, found ", K));
  std::vector<double> T(static_cast<size_t>(K) * K, 0.0);
  if (c.noise == "symmetric") {
    for (int y = 0; y < K; ++y)
      for (int k = 0; k < K; ++k) T[y * K + k] = y == k ? 1 - c.rate : c.rate / (K - 1);
  } else {
    const std::vector<int> map = resolved_class_map(c, K);
    for (int y = 0; y < K; ++y) {
      const int to = map[y];
      if (to < 0 || to == y) {
        T[y * K + y] = 1;
      } else {
        T[y * K + y] = 1 - c.rate;
        T[y * K + to] = c.rate;
      }
    }
  }
  return T;
}

Supervision generate_supervision(const std::vector<int32_t>& clean, int K,
                                 const SupervisionConfig& config) {
  check_config(config);
  if (K < 2)
    throw InputError(cat("supervision: expected at least 2 classes, found ", K));
  if (clean.empty())
    throw InputError("supervision: no labels to generate supervision from");
  if (clean.size() > std::numeric_limits<uint32_t>::max())
    throw InputError(cat("supervision: ", clean.size(), " labels, at most 2^32 - 1 supported"));
  for (size_t i = 0; i < clean.size(); ++i)
    if (clean[i] < 0 || clean[i] >= K)
      throw InputError(
          cat("supervision: clean label ", clean[i], " at index ", i, " is outside [0, ", K, ")",
              clean[i] == -1 ? " (generated supervision needs a label for every image; for the "
                               "dataset's own unlabelled images use supervision.source: dataset)"
                             : ""));

  Supervision s;
  s.kind = config.kind;
  s.N = static_cast<int>(clean.size());
  s.K = K;
  s.config = config;
  s.source = "generated";
  const size_t N = clean.size();
  const rng::Philox gen(config.seed, rng::kCorruption);
  auto u = [&](Draw d, size_t i, uint32_t j) {
    return rng::uniform<double>(gen, d, static_cast<uint32_t>(i), j);
  };
  s.observed = clean;
  s.labeled.assign(N, 1);

  switch (config.kind) {
  case SupervisionKind::Clean:
    break;
  case SupervisionKind::Noisy:
    if (config.noise == "symmetric") {
      for (size_t i = 0; i < N; ++i) {
        if (u(kDrawSymmetric, i, 0) >= config.rate)
          continue;
        int other = static_cast<int>(u(kDrawSymmetric, i, 1) * (K - 1));
        other = std::min(other, K - 2);
        s.observed[i] = other >= clean[i] ? other + 1 : other; // skips the clean class
      }
    } else {
      const std::vector<int> map = resolved_class_map(config, K);
      s.config.class_map = map;
      for (size_t i = 0; i < N; ++i) {
        const int to = map[clean[i]];
        if (to < 0 || to == clean[i])
          continue;
        if (u(kDrawAsymmetric, i, 0) < config.rate)
          s.observed[i] = to;
      }
    }
    break;
  case SupervisionKind::Partial: {
    s.candidates.assign(N * K, 0);
    const bool random = config.partial == "random";
    for (size_t i = 0; i < N; ++i) {
      const int y = clean[i];
      uint8_t* row = s.candidates.data() + i * K;
      row[y] = 1;
      for (int k = 0; k < K; ++k) {
        if (k == y)
          continue;
        const double p = random ? config.q : class50_probability((k - y + K) % K);
        if (u(random ? kDrawPartialRandom : kDrawClass50, i, static_cast<uint32_t>(k)) < p)
          row[k] = 1;
      }
    }
    s.observed.assign(N, -1); // the candidate set is the observation
    break;
  }
  case SupervisionKind::Unlabeled: {
    // per class, round(fraction * count) samples chosen uniformly: the ones with the
    // smallest random keys
    std::vector<std::vector<std::pair<uint64_t, uint32_t>>> by_class(K);
    for (size_t i = 0; i < N; ++i) {
      const rng::Counter c = gen.bits(0u, static_cast<uint32_t>(i), kDrawUnlabeled, 2u);
      const uint64_t key = (uint64_t(c.v[0]) << 32) | c.v[1];
      by_class[clean[i]].emplace_back(key, static_cast<uint32_t>(i));
    }
    s.labeled.assign(N, 0);
    for (auto& members : by_class) {
      const size_t keep = static_cast<size_t>(
          std::llround(config.labeled_fraction * static_cast<double>(members.size())));
      std::sort(members.begin(), members.end());
      for (size_t j = 0; j < keep && j < members.size(); ++j)
        s.labeled[members[j].second] = 1;
    }
    for (size_t i = 0; i < N; ++i)
      if (!s.labeled[i])
        s.observed[i] = -1;
    break;
  }
  }
  if (s.candidates.empty())
    s.candidates = one_hot(s.observed, K);
  compute_stats(s, clean);
  return s;
}

Supervision supervision_from_split(const Split& split, int K, SupervisionKind kind) {
  const std::string g = "/" + (split.name.empty() ? std::string("train") : split.name);
  const size_t N = static_cast<size_t>(split.N);
  if (split.labels.size() != N)
    throw InputError(cat("supervision from the dataset: ", g, "/labels has ", split.labels.size(),
                         " entries for ", N, " images"));
  Supervision s;
  s.kind = kind;
  s.N = split.N;
  s.K = K;
  s.config.kind = kind;
  s.source = "dataset";
  s.labeled.assign(N, 1);
  auto need_label = [&](size_t i, const char* why) {
    const int32_t y = split.labels[i];
    if (y < 0 || y >= K)
      throw InputError(cat("supervision '", kind_name(kind), "' from the dataset: ", g,
                           "/labels has ", y, " at index ", i, ", expected a label in [0, ", K,
                           ") ", why));
    return y;
  };
  switch (kind) {
  case SupervisionKind::Clean:
  case SupervisionKind::Noisy:
    s.observed.resize(N);
    for (size_t i = 0; i < N; ++i)
      s.observed[i] = need_label(i, "(every image needs an observed label; for missing labels "
                                    "use kind unlabeled with /unlabeled flags)");
    s.candidates = one_hot(s.observed, K);
    break;
  case SupervisionKind::Partial:
    if (split.candidates.empty())
      throw InputError(cat("supervision 'partial' from the dataset: ", g,
                           "/candidates is missing: expected (N, K) = (", N, ", ", K,
                           ") uint8 candidate sets (1 = class in the set)"));
    if (split.candidates.size() != N * K)
      throw InputError(cat("supervision 'partial' from the dataset: ", g, "/candidates has ",
                           split.candidates.size(), " flags, expected (N, K) = (", N, ", ", K,
                           ")"));
    s.candidates = split.candidates;
    for (size_t i = 0; i < N; ++i) {
      int count = 0;
      for (int k = 0; k < K; ++k)
        count += s.candidates[i * K + k] ? 1 : 0;
      if (count == 0)
        throw InputError(cat("supervision 'partial' from the dataset: ", g, "/candidates row ", i,
                             " is empty: every image needs a non-empty candidate set"));
    }
    s.observed.assign(N, -1);
    break;
  case SupervisionKind::Unlabeled:
    if (split.unlabeled.empty())
      throw InputError(cat("supervision 'unlabeled' from the dataset: ", g,
                           "/unlabeled is missing: expected (N) = (", N,
                           ",) uint8 flags (1 = no label observed)"));
    if (split.unlabeled.size() != N)
      throw InputError(cat("supervision 'unlabeled' from the dataset: ", g, "/unlabeled has ",
                           split.unlabeled.size(), " flags for ", N, " images"));
    s.observed.assign(N, -1);
    for (size_t i = 0; i < N; ++i) {
      s.labeled[i] = split.unlabeled[i] ? 0 : 1;
      if (s.labeled[i])
        s.observed[i] = need_label(i, cat("(", g, "/unlabeled[", i, "] is 0: labelled)").c_str());
    }
    s.candidates = one_hot(s.observed, K);
    break;
  }
  compute_stats(s, split.clean_labels);
  return s;
}

void apply_to_split(const Supervision& sup, const std::vector<int32_t>& clean, Split& split) {
  const size_t N = static_cast<size_t>(split.N);
  if (static_cast<size_t>(sup.N) != N || (!clean.empty() && clean.size() != N))
    throw InputError(
        cat("supervision for ", sup.N, " images cannot be applied to a split of ", N, " images"));
  split.labels = sup.observed;
  split.candidates.clear();
  split.unlabeled.clear();
  if (sup.kind == SupervisionKind::Partial)
    split.candidates = sup.candidates;
  if (sup.kind == SupervisionKind::Unlabeled) {
    split.unlabeled.resize(N);
    for (size_t i = 0; i < N; ++i)
      split.unlabeled[i] = sup.labeled[i] ? 0 : 1;
  }
  if (!clean.empty())
    split.clean_labels = clean;
}

std::string summary(const Supervision& s) {
  std::string head = describe_config(s);
  head += s.source == "generated" ? cat(", generated with seed ", s.config.seed)
                                  : std::string(", from the dataset file");
  const bool truth_known = !std::isnan(s.stats.true_label_in_candidates);
  std::string noise;
  if (s.kind == SupervisionKind::Partial)
    noise = "no single observed label (candidate sets); ";
  else if (!std::isnan(s.stats.noise_rate))
    noise =
        cat("actual noise rate ", fmt(s.stats.noise_rate), " (observed label != clean label); ");
  return cat(head, ": ", s.N, " images, ", s.K, " classes; ", noise, "mean candidate-set size ",
             fmt(s.stats.mean_candidates, 3), "; labelled fraction ", fmt(s.stats.labeled_fraction),
             truth_known ? cat("; clean label in the candidate set for ",
                               fmt(s.stats.true_label_in_candidates), " of the images")
                         : std::string("; the clean labels are unknown (no clean_labels), so is "
                                       "the actual noise rate"),
             ".");
}

void write_supervision(const std::string& path, const Supervision& s) {
  const size_t N = static_cast<size_t>(s.N), K = static_cast<size_t>(s.K);
  if (s.observed.size() != N || s.candidates.size() != N * K || s.labeled.size() != N)
    throw Error(cat("write_supervision: inconsistent sizes (N ", N, ", K ", K, "; observed ",
                    s.observed.size(), ", candidates ", s.candidates.size(), ", labeled ",
                    s.labeled.size(), ")"));
  h5::write_atomic(path, [&](h5::File& f) {
    f.set_attr("/", "format", std::string(kSupervisionFormat));
    f.set_attr("/", "format_version", int64_t(kSupervisionFormatVersion));
    f.set_attr("/", "kind", std::string(kind_name(s.kind)));
    f.set_attr("/", "source", s.source);
    f.set_attr("/", "N", int64_t(s.N));
    f.set_attr("/", "K", int64_t(s.K));
    f.set_attr("/", "summary", summary(s));
    f.write("/observed", {N}, s.observed.data());
    f.write("/candidates", {N, K}, s.candidates.data(), 4);
    f.write("/labeled", {N}, s.labeled.data());
    f.make_groups("/config");
    const auto& c = s.config;
    f.set_attr("/config", "kind", std::string(kind_name(c.kind)));
    f.set_attr("/config", "noise", c.noise);
    f.set_attr("/config", "rate", c.rate);
    f.set_attr("/config", "partial", c.partial);
    f.set_attr("/config", "q", c.q);
    f.set_attr("/config", "labeled_fraction", c.labeled_fraction);
    int64_t seed;
    std::memcpy(&seed, &c.seed, sizeof seed); // bit pattern: uint64 round trip
    f.set_attr("/config", "seed", seed);
    f.set_attr("/config", "dataset_name", c.dataset_name);
    if (!c.class_map.empty())
      f.set_attr("/config", "class_map",
                 std::vector<int64_t>(c.class_map.begin(), c.class_map.end()));
    f.make_groups("/stats");
    f.set_attr("/stats", "noise_rate", s.stats.noise_rate);
    f.set_attr("/stats", "mean_candidates", s.stats.mean_candidates);
    f.set_attr("/stats", "labeled_fraction", s.stats.labeled_fraction);
    f.set_attr("/stats", "true_label_in_candidates", s.stats.true_label_in_candidates);
  });
}

Supervision read_supervision(const std::string& path) {
  h5::File f(path, h5::File::Mode::Read);
  auto bad = [&](const std::string& object, const std::string& what) {
    return InputError(cat("supervision file '", path, "', ", object, ": ", what));
  };
  const std::string format = f.has_attr("/", "format") ? f.attr_string("/", "format") : "";
  if (format != kSupervisionFormat)
    throw bad("/",
              cat("attribute 'format' is \"", format, "\", expected \"", kSupervisionFormat, "\""));
  const int64_t version = f.attr_int("/", "format_version");
  if (version != kSupervisionFormatVersion)
    throw bad("/", cat("attribute 'format_version' is ", version, ", expected ",
                       kSupervisionFormatVersion));
  Supervision s;
  s.kind = parse_kind(f.attr_string("/", "kind"));
  s.source = f.attr_string("/", "source");
  const int64_t N = f.attr_int("/", "N"), K = f.attr_int("/", "K");
  if (N < 0 || N > std::numeric_limits<int32_t>::max() || K < 2 || K > 100000)
    throw bad("/", cat("attributes N = ", N, ", K = ", K, " out of range"));
  s.N = static_cast<int>(N);
  s.K = static_cast<int>(K);
  const size_t n = static_cast<size_t>(N), k = static_cast<size_t>(K);
  auto expect = [&](const std::string& d, const std::vector<size_t>& shape) {
    if (f.shape(d) != shape)
      throw bad(d, cat("shape does not match N = ", N, ", K = ", K));
  };
  expect("/observed", {n});
  expect("/candidates", {n, k});
  expect("/labeled", {n});
  s.observed = f.read_int("/observed").data;
  s.candidates = f.read_uint8("/candidates").data;
  s.labeled = f.read_uint8("/labeled").data;
  for (size_t i = 0; i < n; ++i)
    if (s.observed[i] < -1 || s.observed[i] >= K)
      throw bad("/observed",
                cat("label ", s.observed[i], " at index ", i, " is outside [-1, ", K, ")"));

  auto& c = s.config;
  c.kind = parse_kind(f.attr_string("/config", "kind"));
  c.noise = f.attr_string("/config", "noise");
  c.rate = f.attr_double("/config", "rate");
  c.partial = f.attr_string("/config", "partial");
  c.q = f.attr_double("/config", "q");
  c.labeled_fraction = f.attr_double("/config", "labeled_fraction");
  const int64_t seed = f.attr_int("/config", "seed");
  std::memcpy(&c.seed, &seed, sizeof seed);
  c.dataset_name = f.attr_string("/config", "dataset_name");
  if (f.has_attr("/config", "class_map")) {
    const auto m = f.attr_ints("/config", "class_map");
    c.class_map.assign(m.begin(), m.end());
  }
  s.stats.noise_rate = f.attr_double("/stats", "noise_rate");
  s.stats.mean_candidates = f.attr_double("/stats", "mean_candidates");
  s.stats.labeled_fraction = f.attr_double("/stats", "labeled_fraction");
  s.stats.true_label_in_candidates = f.attr_double("/stats", "true_label_in_candidates");
  return s;
}

} // namespace dmis::data

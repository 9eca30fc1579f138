// The imprecise-supervision generators against their definitions (spec/method.md section 2):
// statistics within 4 standard errors on N = 60000 balanced labels, exact structural properties,
// determinism, the user's own labels from a dataset split, and the supervision file.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "data/supervision.hpp"
#include "data_test_util.hpp"
#include "io/h5.hpp"

namespace dmis::test {
namespace {

using data::Supervision;
using data::SupervisionConfig;
using data::SupervisionKind;

constexpr int kN = 60000, kK = 10;

std::vector<int32_t> balanced_labels(int N = kN, int K = kK) {
  std::vector<int32_t> y(N);
  for (int i = 0; i < N; ++i)
    y[i] = i % K;
  return y;
}

// |observed - expected| <= 4 standard errors of a proportion over n trials.
::testing::AssertionResult within_4se(double observed, double p, double n,
                                      const std::string& what) {
  const double se = std::sqrt(p * (1 - p) / n);
  if (std::fabs(observed - p) <= 4 * se + 1e-12)
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << what << ": " << observed << ", expected " << p
                                       << " +- 4 x " << se << " (n = " << n << ")";
}

SupervisionConfig config(SupervisionKind kind, uint64_t seed = 1) {
  SupervisionConfig c;
  c.kind = kind;
  c.seed = seed;
  return c;
}

int set_size(const Supervision& s, int i) {
  int n = 0;
  for (int k = 0; k < s.K; ++k)
    n += s.candidates[static_cast<size_t>(i) * s.K + k];
  return n;
}

void expect_one_hot_of_observed(const Supervision& s) {
  for (int i = 0; i < s.N; ++i)
    for (int k = 0; k < s.K; ++k) {
      const int want = s.observed[i] < 0 || s.observed[i] == k ? 1 : 0;
      ASSERT_EQ(s.candidates[static_cast<size_t>(i) * s.K + k], want) << "sample " << i;
    }
}

TEST(Supervision, Clean) {
  const auto y = balanced_labels();
  const Supervision s = data::generate_supervision(y, kK, config(SupervisionKind::Clean));
  EXPECT_EQ(s.observed, y);
  EXPECT_EQ(s.labeled, std::vector<uint8_t>(kN, 1));
  expect_one_hot_of_observed(s);
  EXPECT_EQ(s.stats.noise_rate, 0.0);
  EXPECT_EQ(s.stats.mean_candidates, 1.0);
  EXPECT_EQ(s.stats.true_label_in_candidates, 1.0);
  EXPECT_EQ(s.source, "generated");
}

TEST(Supervision, NoisySymmetric) {
  const auto y = balanced_labels();
  for (double rate : {0.2, 0.4}) {
    SupervisionConfig c = config(SupervisionKind::Noisy);
    c.noise = "symmetric";
    c.rate = rate;
    const Supervision s = data::generate_supervision(y, kK, c);
    expect_one_hot_of_observed(s);
    // flipped[c][d]: clean c observed as d
    std::vector<std::vector<long>> flipped(kK, std::vector<long>(kK, 0));
    long changed = 0;
    for (int i = 0; i < kN; ++i) {
      ASSERT_GE(s.observed[i], 0);
      ASSERT_LT(s.observed[i], kK);
      if (s.observed[i] != y[i]) {
        ++changed;
        ++flipped[y[i]][s.observed[i]];
      }
    }
    // a replacement never equals the clean label: otherwise the rate would come out at
    // rate * 9/10, far outside 4 standard errors
    EXPECT_TRUE(within_4se(double(changed) / kN, rate, kN, cat("flip rate at ", rate)));
    EXPECT_DOUBLE_EQ(s.stats.noise_rate, double(changed) / kN);
    for (int a = 0; a < kK; ++a) {
      long row = 0;
      for (int b = 0; b < kK; ++b)
        row += flipped[a][b];
      for (int b = 0; b < kK; ++b) {
        if (b == a)
          continue;
        EXPECT_TRUE(within_4se(double(flipped[a][b]) / row, 1.0 / (kK - 1), row,
                               cat("share of class ", a, " flipped to ", b, " at rate ", rate)));
      }
    }
  }
  // rate 1: every label changes
  SupervisionConfig c = config(SupervisionKind::Noisy);
  c.rate = 1.0;
  const Supervision all = data::generate_supervision(y, kK, c);
  for (int i = 0; i < kN; ++i)
    ASSERT_NE(all.observed[i], y[i]) << i;
}

TEST(Supervision, NoisyAsymmetric) {
  const auto y = balanced_labels();
  struct Case {
    std::string name;
    std::vector<int> map; // target of each class (itself: never changed)
  };
  const std::vector<Case> cases = {{"fashion-mnist", {0, 1, 7, 8, 4, 6, 5, 7, 8, 9}},
                                   {"cifar10", {0, 1, 0, 5, 7, 3, 6, 7, 8, 1}}};
  for (const auto& cs : cases) {
    EXPECT_EQ(data::asymmetric_class_map(cs.name, kK), cs.map);
    for (double rate : {0.2, 0.4}) {
      SupervisionConfig c = config(SupervisionKind::Noisy);
      c.noise = "asymmetric";
      c.rate = rate;
      c.dataset_name = cs.name;
      const Supervision s = data::generate_supervision(y, kK, c);
      EXPECT_EQ(s.config.class_map, cs.map);
      long mapped = 0, changed = 0;
      std::vector<long> changed_per_class(kK, 0);
      for (int i = 0; i < kN; ++i) {
        const int from = y[i], to = s.observed[i];
        const bool is_mapped = cs.map[from] != from;
        mapped += is_mapped;
        if (to != from) {
          ASSERT_TRUE(is_mapped) << cs.name << ": unmapped class " << from << " changed to " << to;
          ASSERT_EQ(to, cs.map[from]) << cs.name << ": class " << from;
          ++changed;
          ++changed_per_class[from];
        }
      }
      EXPECT_TRUE(within_4se(double(changed) / mapped, rate, mapped,
                             cat(cs.name, " flip rate among mapped classes at ", rate)));
      for (int k = 0; k < kK; ++k) {
        if (cs.map[k] == k)
          continue;
        EXPECT_TRUE(within_4se(double(changed_per_class[k]) / (kN / kK), rate, kN / kK,
                               cat(cs.name, " flip rate of class ", k)));
      }
    }
  }
  SupervisionConfig c = config(SupervisionKind::Noisy);
  c.noise = "asymmetric";
  c.dataset_name = "mnist";
  EXPECT_TRUE(
      contains_all(input_error([&] { data::generate_supervision(y, kK, c); }),
                   {"no asymmetric class map for dataset 'mnist'", "fashion-mnist, cifar10"}));
  // a map given by the caller: 0 -> 1 only
  c.class_map = {1, -1, 2, 3, 4, 5, 6, 7, 8, 9};
  c.rate = 1.0;
  const Supervision s = data::generate_supervision(y, kK, c);
  for (int i = 0; i < kN; ++i)
    ASSERT_EQ(s.observed[i], y[i] == 0 ? 1 : y[i]);
  c.class_map = {1, 2};
  EXPECT_TRUE(contains_all(input_error([&] { data::generate_supervision(y, kK, c); }),
                           {"class_map has 2 entries, expected K = 10"}));
}

// The known transition of generated noise against the generator itself: the fraction of each
// clean class observed as each label, over many samples, within 4 standard errors of T(y, ŷ).
TEST(Supervision, NoiseTransitionMatchesTheGenerator) {
  const auto y = balanced_labels();
  struct Case {
    std::string noise, dataset;
    double rate;
  };
  for (const Case& cs : {Case{"symmetric", "fashion-mnist", 0.4}, Case{"asymmetric", "fashion-mnist", 0.4},
                         Case{"asymmetric", "cifar10", 0.2}}) {
    SupervisionConfig c = config(SupervisionKind::Noisy);
    c.noise = cs.noise;
    c.rate = cs.rate;
    c.dataset_name = cs.dataset;
    const Supervision s = data::generate_supervision(y, kK, c);
    const std::vector<double> T = data::noise_transition(s);
    ASSERT_EQ(T.size(), static_cast<size_t>(kK * kK));
    std::vector<double> counts(kK * kK, 0), per_class(kK, 0);
    for (int i = 0; i < kN; ++i) {
      counts[y[i] * kK + s.observed[i]] += 1;
      per_class[y[i]] += 1;
    }
    for (int a = 0; a < kK; ++a) {
      double row = 0;
      for (int b = 0; b < kK; ++b) {
        row += T[a * kK + b];
        EXPECT_TRUE(within_4se(counts[a * kK + b] / per_class[a], T[a * kK + b],
                               static_cast<long>(per_class[a]),
                               cat(cs.noise, " ", cs.dataset, ": T(", a, ", ", b, ")")));
      }
      EXPECT_NEAR(row, 1.0, 1e-12) << cs.noise << " row " << a;
    }
    // after a round trip through the file (the resumed run's source)
    ScratchDir dir("noise-transition");
    const std::string path = dir.file("supervision.h5");
    data::write_supervision(path, s);
    const Supervision r = data::read_supervision(path);
    EXPECT_EQ(data::noise_transition(r), T) << cs.noise << " " << cs.dataset;
  }
  // not a generated noise process: named
  Supervision p = data::generate_supervision(y, kK, config(SupervisionKind::Partial));
  EXPECT_TRUE(contains_all(input_error([&] { data::noise_transition(p); }),
                           {"needs noisy-label supervision", "partial"}));
  SupervisionConfig c = config(SupervisionKind::Noisy);
  Supervision d = data::generate_supervision(y, kK, c);
  d.source = "dataset";
  EXPECT_TRUE(contains_all(input_error([&] { data::noise_transition(d); }),
                           {"supervision.source: generate", "'dataset'"}));
}

TEST(Supervision, PartialRandom) {
  const auto y = balanced_labels();
  for (double q : {0.3, 0.5}) {
    SupervisionConfig c = config(SupervisionKind::Partial);
    c.partial = "random";
    c.q = q;
    const Supervision s = data::generate_supervision(y, kK, c);
    std::vector<long> in_set(kK, 0); // wrong class k in the set
    double total = 0;
    for (int i = 0; i < kN; ++i) {
      ASSERT_EQ(s.candidates[static_cast<size_t>(i) * kK + y[i]], 1) << "true label of " << i;
      ASSERT_EQ(s.observed[i], -1);
      ASSERT_EQ(s.labeled[i], 1);
      for (int k = 0; k < kK; ++k)
        if (k != y[i])
          in_set[k] += s.candidates[static_cast<size_t>(i) * kK + k];
      total += set_size(s, i);
    }
    const double wrong_trials = kN - kN / kK;
    for (int k = 0; k < kK; ++k)
      EXPECT_TRUE(within_4se(in_set[k] / wrong_trials, q, wrong_trials,
                             cat("inclusion of wrong class ", k, " at q ", q)));
    const double mean = total / kN, se = std::sqrt((kK - 1) * q * (1 - q) / kN);
    EXPECT_NEAR(mean, 1 + (kK - 1) * q, 4 * se) << "mean set size at q " << q;
    EXPECT_DOUBLE_EQ(s.stats.mean_candidates, mean);
    EXPECT_EQ(s.stats.true_label_in_candidates, 1.0);
    EXPECT_TRUE(std::isnan(s.stats.noise_rate));
  }
}

TEST(Supervision, PartialClass50) {
  const auto y = balanced_labels();
  SupervisionConfig c = config(SupervisionKind::Partial);
  c.partial = "class50";
  const Supervision s = data::generate_supervision(y, kK, c);
  std::vector<long> at_offset(kK, 0);
  for (int i = 0; i < kN; ++i) {
    ASSERT_EQ(s.candidates[static_cast<size_t>(i) * kK + y[i]], 1);
    for (int o = 1; o < kK; ++o)
      at_offset[o] += s.candidates[static_cast<size_t>(i) * kK + (y[i] + o) % kK];
  }
  const double p[3] = {0.7, 0.5, 0.3};
  double expected_size = 1;
  for (int o = 1; o < kK; ++o) {
    EXPECT_TRUE(within_4se(double(at_offset[o]) / kN, p[(o - 1) % 3], kN,
                           cat("inclusion at cyclic offset ", o)));
    expected_size += p[(o - 1) % 3];
  }
  EXPECT_NEAR(s.stats.mean_candidates, expected_size, 0.02);
  // another K: the pattern repeats cyclically
  const auto y4 = balanced_labels(kN, 4);
  const Supervision s4 = data::generate_supervision(y4, 4, c);
  std::vector<long> at4(4, 0);
  for (int i = 0; i < kN; ++i)
    for (int o = 1; o < 4; ++o)
      at4[o] += s4.candidates[static_cast<size_t>(i) * 4 + (y4[i] + o) % 4];
  for (int o = 1; o < 4; ++o)
    EXPECT_TRUE(within_4se(double(at4[o]) / kN, p[o - 1], kN, cat("K = 4, offset ", o)));
}

TEST(Supervision, Unlabeled) {
  for (double f : {0.01, 0.1}) {
    const auto y = balanced_labels();
    SupervisionConfig c = config(SupervisionKind::Unlabeled);
    c.labeled_fraction = f;
    const Supervision s = data::generate_supervision(y, kK, c);
    std::vector<long> per_class(kK, 0);
    double index_sum = 0;
    long labeled = 0;
    for (int i = 0; i < kN; ++i) {
      if (s.labeled[i]) {
        ASSERT_EQ(s.observed[i], y[i]);
        ++per_class[y[i]];
        index_sum += i;
        ++labeled;
      } else {
        ASSERT_EQ(s.observed[i], -1);
        ASSERT_EQ(set_size(s, i), kK) << "an unlabelled sample's candidate set is every class";
      }
    }
    expect_one_hot_of_observed(s);
    for (int k = 0; k < kK; ++k)
      EXPECT_LE(std::labs(per_class[k] - std::lround(f * kN / kK)), 1)
          << "class " << k << ", f " << f;
    EXPECT_NEAR(s.stats.labeled_fraction, f, 1.0 / kN * kK);
    EXPECT_EQ(s.stats.noise_rate, 0.0);
    // chosen at random, not the first images of each class: the mean index is near N/2
    const double mean_index = index_sum / labeled, sd = kN / std::sqrt(12.0 * labeled);
    EXPECT_NEAR(mean_index, kN / 2.0, 4 * sd) << "f " << f;
  }
  // unbalanced classes: per class round(f * count)
  std::vector<int32_t> y;
  const int counts[3] = {7, 25, 104};
  for (int k = 0; k < 3; ++k)
    y.insert(y.end(), counts[k], k);
  SupervisionConfig c = config(SupervisionKind::Unlabeled);
  c.labeled_fraction = 0.1;
  const Supervision s = data::generate_supervision(y, 3, c);
  std::vector<int> per(3, 0);
  for (size_t i = 0; i < y.size(); ++i)
    per[y[i]] += s.labeled[i];
  EXPECT_EQ(per, (std::vector<int>{1, 3, 10})); // round(0.7), round(2.5), round(10.4)
}

TEST(Supervision, Deterministic) {
  const auto y = balanced_labels();
  std::vector<SupervisionConfig> cs;
  for (auto kind : {SupervisionKind::Noisy, SupervisionKind::Partial, SupervisionKind::Unlabeled})
    cs.push_back(config(kind, 7));
  cs.push_back(config(SupervisionKind::Partial, 7));
  cs.back().partial = "class50";
  cs.push_back(config(SupervisionKind::Noisy, 7));
  cs.back().noise = "asymmetric";
  cs.back().dataset_name = "fashion-mnist";
  for (auto c : cs) {
    const Supervision a = data::generate_supervision(y, kK, c);
    const Supervision b = data::generate_supervision(y, kK, c);
    EXPECT_EQ(a.observed, b.observed);
    EXPECT_EQ(a.candidates, b.candidates);
    EXPECT_EQ(a.labeled, b.labeled);
    c.seed = 8;
    const Supervision d = data::generate_supervision(y, kK, c);
    EXPECT_TRUE(a.observed != d.observed || a.candidates != d.candidates || a.labeled != d.labeled)
        << data::summary(a) << " is the same for seeds 7 and 8";
  }
  // generators do not share draws: with one seed, noisy and partial use independent numbers
  const Supervision n = data::generate_supervision(y, kK, config(SupervisionKind::Noisy, 3));
  SupervisionConfig pc = config(SupervisionKind::Partial, 3);
  pc.q = 0.4;
  const Supervision p = data::generate_supervision(y, kK, pc);
  long both = 0, flipped = 0;
  for (int i = 0; i < kN; ++i) {
    const bool f = n.observed[i] != y[i];
    flipped += f;
    both += f && p.candidates[static_cast<size_t>(i) * kK + (y[i] + 1) % kK];
  }
  EXPECT_TRUE(within_4se(double(both) / flipped, 0.4, flipped, "independence of the streams"));
}

TEST(Supervision, BadConfigAndLabels) {
  const auto y = balanced_labels(100);
  SupervisionConfig c = config(SupervisionKind::Noisy);
  c.rate = 1.5;
  EXPECT_TRUE(contains_all(input_error([&] { data::generate_supervision(y, kK, c); }),
                           {"rate must be in [0, 1], found 1.5"}));
  c = config(SupervisionKind::Partial);
  c.partial = "class-50";
  EXPECT_TRUE(contains_all(input_error([&] { data::generate_supervision(y, kK, c); }),
                           {"partial must be 'random' or 'class50', found 'class-50'"}));
  auto bad = y;
  bad[42] = -1;
  EXPECT_TRUE(contains_all(
      input_error([&] { data::generate_supervision(bad, kK, config(SupervisionKind::Clean)); }),
      {"clean label -1 at index 42", "supervision.source: dataset"}));
  EXPECT_TRUE(
      contains_all(input_error([] { data::parse_kind("noisey"); }),
                   {"unknown supervision kind 'noisey'", "clean, noisy, partial, unlabeled"}));
}

TEST(Supervision, FromDatasetSplit) {
  // generated supervision written into a split the way a user's would be, read back from it
  const auto y = balanced_labels(2000);
  std::vector<SupervisionConfig> cs = {
      config(SupervisionKind::Clean), config(SupervisionKind::Noisy),
      config(SupervisionKind::Partial), config(SupervisionKind::Unlabeled)};
  ScratchDir dir("supervision");
  for (const auto& c : cs) {
    const Supervision gen = data::generate_supervision(y, kK, c);
    data::Dataset ds = synthetic_dataset(2000, 1, 2, 2, kK);
    data::apply_to_split(gen, y, ds.train);
    const std::string path = dir.file(std::string(data::kind_name(c.kind)) + ".h5");
    data::write_dataset(path, ds);
    const data::Dataset back = data::read_dataset(path);
    const Supervision s = data::supervision_from_split(back.train, kK, c.kind);
    EXPECT_EQ(s.source, "dataset");
    EXPECT_EQ(s.observed, gen.observed) << data::kind_name(c.kind);
    EXPECT_EQ(s.candidates, gen.candidates) << data::kind_name(c.kind);
    EXPECT_EQ(s.labeled, gen.labeled) << data::kind_name(c.kind);
    EXPECT_DOUBLE_EQ(s.stats.mean_candidates, gen.stats.mean_candidates);
    EXPECT_DOUBLE_EQ(s.stats.labeled_fraction, gen.stats.labeled_fraction);
    EXPECT_DOUBLE_EQ(s.stats.true_label_in_candidates, gen.stats.true_label_in_candidates);
  }
  data::Split sp = synthetic_dataset(10, 1, 2, 2, 3).train;
  EXPECT_TRUE(contains_all(
      input_error([&] { data::supervision_from_split(sp, 3, SupervisionKind::Partial); }),
      {"/train/candidates is missing", "(N, K) = (10, 3)"}));
  EXPECT_TRUE(contains_all(
      input_error([&] { data::supervision_from_split(sp, 3, SupervisionKind::Unlabeled); }),
      {"/train/unlabeled is missing"}));
  sp.labels[4] = -1;
  EXPECT_TRUE(contains_all(
      input_error([&] { data::supervision_from_split(sp, 3, SupervisionKind::Noisy); }),
      {"'noisy'", "/train/labels has -1 at index 4"}));
  // without clean labels the noise rate is unknown
  sp.labels[4] = 0;
  const Supervision s = data::supervision_from_split(sp, 3, SupervisionKind::Noisy);
  EXPECT_TRUE(std::isnan(s.stats.noise_rate));
  EXPECT_TRUE(contains_all(data::summary(s),
                           {"noisy labels", "from the dataset file", "clean labels are unknown"}));
}

TEST(Supervision, SummaryAndFileRoundTrip) {
  const auto y = balanced_labels();
  SupervisionConfig c = config(SupervisionKind::Noisy, (uint64_t(1) << 63) + 5);
  c.noise = "asymmetric";
  c.rate = 0.3;
  c.dataset_name = "cifar10";
  const Supervision s = data::generate_supervision(y, kK, c);
  const std::string text = data::summary(s);
  EXPECT_TRUE(contains_all(text, {"noisy labels (asymmetric, rate 0.3)",
                                  "generated with seed 9223372036854775813",
                                  "60000 images, 10 classes", "actual noise rate 0.1",
                                  "mean candidate-set size 1.000", "labelled fraction 1.0000"}))
      << text;
  ScratchDir dir("supervision");
  const std::string path = dir.file("supervision.h5");
  data::write_supervision(path, s);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  const Supervision r = data::read_supervision(path);
  EXPECT_EQ(r.kind, s.kind);
  EXPECT_EQ(r.N, s.N);
  EXPECT_EQ(r.K, s.K);
  EXPECT_EQ(r.observed, s.observed);
  EXPECT_EQ(r.candidates, s.candidates);
  EXPECT_EQ(r.labeled, s.labeled);
  EXPECT_EQ(r.source, "generated");
  EXPECT_EQ(r.config.kind, c.kind);
  EXPECT_EQ(r.config.noise, "asymmetric");
  EXPECT_EQ(r.config.rate, 0.3);
  EXPECT_EQ(r.config.partial, c.partial);
  EXPECT_EQ(r.config.q, c.q);
  EXPECT_EQ(r.config.labeled_fraction, c.labeled_fraction);
  EXPECT_EQ(r.config.seed, c.seed);
  EXPECT_EQ(r.config.dataset_name, "cifar10");
  EXPECT_EQ(r.config.class_map, s.config.class_map);
  EXPECT_EQ(r.stats.noise_rate, s.stats.noise_rate);
  EXPECT_EQ(r.stats.mean_candidates, s.stats.mean_candidates);
  EXPECT_EQ(r.stats.labeled_fraction, s.stats.labeled_fraction);
  EXPECT_EQ(r.stats.true_label_in_candidates, s.stats.true_label_in_candidates);
  EXPECT_EQ(data::summary(r), text);
  {
    h5::File f(path, h5::File::Mode::Read); // self-describing
    EXPECT_EQ(f.attr_string("/", "summary"), text);
    EXPECT_EQ(f.attr_string("/", "kind"), "noisy");
  }

  // partial: NaN noise rate survives the file
  const Supervision p = data::generate_supervision(y, kK, config(SupervisionKind::Partial));
  data::write_supervision(path, p);
  const Supervision pr = data::read_supervision(path);
  EXPECT_TRUE(std::isnan(pr.stats.noise_rate));
  EXPECT_EQ(pr.candidates, p.candidates);
  EXPECT_TRUE(contains_all(data::summary(p),
                           {"partial labels (random, q 0.5)", "no single observed label"}));

  // a dataset file is not a supervision file
  const std::string other = dir.file("ds.h5");
  data::write_dataset(other, synthetic_dataset(4, 1, 2, 2, 2));
  EXPECT_TRUE(contains_all(
      input_error([&] { data::read_supervision(other); }),
      {other, "attribute 'format' is \"dmis-dataset\"", "expected \"dmis-supervision\""}));
}

} // namespace
} // namespace dmis::test

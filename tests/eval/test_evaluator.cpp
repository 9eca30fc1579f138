// The evaluator network (models/evaluator.hpp), its training loop and its file: gradients of the
// whole network against central finite differences in double, partial batches, learning a
// small synthetic task, determinism, and the HDF5 round trip with its error messages.
#include <cstdio>
#include <filesystem>
#include <random>

#include "eval/image_classifier.hpp"
#include "eval/evaluator_file.hpp"
#include "harness/exec_spaces.hpp"
#include "harness/gradcheck.hpp"
#include "harness/tensor.hpp"
#include "io/h5.hpp"
#include "kernels/cross_entropy.hpp"
#include "models/evaluator.hpp"

namespace {
using namespace dmis;
using namespace dmis::test;

models::EvaluatorConfig tiny_config() {
  models::EvaluatorConfig c;
  c.in_channels = 1;
  c.resolution = 6;
  c.classes = 3;
  c.groups = 4;
  c.channels = {8, 8};
  c.strides = {1, 2};
  return c;
}

template <class E> class EvaluatorTest : public ::testing::Test {};
TYPED_TEST_SUITE(EvaluatorTest, ExecSpaces, ExecSpaceNames);

TYPED_TEST(EvaluatorTest, ParameterTableAndDefaultArchitecture) {
  const models::EvaluatorConfig d;
  const ParamTable t = models::evaluator_param_table(d);
  EXPECT_EQ(t.at("conv0.weight").shape, (std::vector<int>{32, 1, 3, 3}));
  EXPECT_EQ(t.at("conv3.weight").shape, (std::vector<int>{128, 64, 3, 3}));
  EXPECT_EQ(t.at("fc.weight").shape, (std::vector<int>{10, 128}));
  EXPECT_EQ(t.total(), 131466u);
  EXPECT_EQ(d.features(), 128);
  models::EvaluatorConfig bad = d;
  bad.channels = {32, 60};
  bad.strides = {1, 2};
  try {
    bad.validate();
    FAIL() << "60 channels in 8 groups accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(
                  "channels[1] must be a positive multiple of groups (8), found 60"),
              std::string::npos)
        << e.what();
  }
  bad = d;
  bad.strides = {1, 3, 1, 2};
  EXPECT_THROW(bad.validate(), InputError);
}

TYPED_TEST(EvaluatorTest, BackwardMatchesFiniteDifferences) {
  using E = TypeParam;
  using Xent = kernels::SoftmaxCrossEntropy<E, double>;
  E exec;
  const auto cfg = tiny_config();
  const int B = 3, K = cfg.classes;
  models::Evaluator<E, double> net(cfg);
  net.prepare(B);
  const int P = static_cast<int>(net.table().total());
  TestTensor<double, E> params("params", {P}), grads("grads", {P}), x("x", {B, 1, 6, 6}),
      probs("probs", {B, K}), ps("ps", {B}), tot("tot", {1});
  models::init_evaluator_params(exec, net.table(), params.t1(), 7);
  params.download();
  for (size_t i = 0; i < params.size(); ++i)
    params[i] *= 1.5; // larger weights: larger signals
  params.upload();
  x.randn(2);
  Kokkos::View<int*, Kokkos::LayoutRight, DeviceOf<E>> labels("dmis::test::labels", B);
  auto hl = Kokkos::create_mirror_view(labels);
  hl(0) = 2, hl(1) = 0, hl(2) = 1;
  Kokkos::deep_copy(labels, hl);
  const Tensor1<const int, E> L(labels.data(), B);
  const Tensor1<const double, E> cp = params.t1();
  net.forward(exec, cp, x.t4());
  Xent::forward(exec, net.logits(B), L, probs.t2(), ps.t1(), tot.t1());
  Xent::backward(exec, 1.0, probs.t2(), L, probs.t2(), GradMode::Overwrite);
  grads.fill(0);
  net.backward(exec, cp, x.t4(), probs.t2(), grads.t1());
  grads.download();
  double gmax = 0;
  for (size_t i = 0; i < grads.size(); ++i)
    gmax = std::max(gmax, std::fabs(grads[i]));
  EXPECT_GT(gmax, 1e-3) << "gradients vanish: the check would prove nothing";
  expect_gradients_match<E>({{"params", &params, &grads}}, [&]() {
    net.forward(exec, cp, x.t4());
    Xent::forward(exec, net.logits(B), L, probs.t2(), ps.t1(), tot.t1());
    tot.download();
    return tot[0];
  });
}

TYPED_TEST(EvaluatorTest, PartialBatchEqualsTheFirstRowsOfAFullOne) {
  using E = TypeParam;
  E exec;
  const auto cfg = tiny_config();
  models::Evaluator<E, float> net(cfg);
  net.prepare(5, /*inference_only=*/true);
  const int P = static_cast<int>(net.table().total());
  TestTensor<float, E> params("params", {P}), x("x", {5, 1, 6, 6});
  models::init_evaluator_params(exec, net.table(), params.t1(), 3);
  x.randn(4);
  const Tensor1<const float, E> cp = params.t1();
  net.forward(exec, cp, x.t4());
  auto full = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), net.features(5));
  net.forward(exec, cp, Tensor4<const float, E>(x.dev.data(), 2, 1, 6, 6));
  auto part = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), net.features(2));
  for (int b = 0; b < 2; ++b)
    for (int f = 0; f < 8; ++f)
      EXPECT_EQ(part(b, f), full(b, f)) << b << " " << f;
  TestTensor<float, E> big("big", {6, 1, 6, 6});
  EXPECT_THROW(net.forward(exec, cp, big.t4()), ShapeError);
  TestTensor<float, E> wrong("wrong", {2, 1, 7, 7});
  EXPECT_THROW(net.forward(exec, cp, wrong.t4()), ShapeError);
  TestTensor<float, E> g("g", {P}), dl("dl", {2, 3});
  EXPECT_THROW(
      net.backward(exec, cp, Tensor4<const float, E>(x.dev.data(), 2, 1, 6, 6), dl.t2(), g.t1()),
      ShapeError); // prepared for inference only
}

// Three classes told apart by where a bright band lies; random pixel noise on top.
std::vector<float> band_images(int N, int R, std::vector<int32_t>& labels, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> noise(0.0f, 0.3f);
  std::vector<float> img(static_cast<size_t>(N) * R * R);
  labels.resize(N);
  for (int i = 0; i < N; ++i) {
    labels[i] = i % 3;
    for (int h = 0; h < R; ++h)
      for (int w = 0; w < R; ++w)
        img[(static_cast<size_t>(i) * R + h) * R + w] =
            (h / (R / 3) == labels[i] ? 0.8f : -0.8f) + noise(rng);
  }
  return img;
}

TYPED_TEST(EvaluatorTest, LearnsASyntheticTaskDeterministically) {
  using E = TypeParam;
  E exec;
  auto cfg = tiny_config();
  std::vector<int32_t> lt, lv;
  const auto it = band_images(96, 6, lt, 1), iv = band_images(60, 6, lv, 2);
  const auto train = eval::upload_images<E>(it, lt, 96, 1, 6, 6, 3, "train");
  const auto test = eval::upload_images<E>(iv, lv, 60, 1, 6, 6, 3, "test");
  eval::TrainOptions opt;
  opt.steps = 60;
  opt.batch = 32;
  opt.lr = 1e-2;
  opt.seed = 5;
  opt.log_seconds = -1;
  std::vector<float> first;
  for (int run = 0; run < 2; ++run) {
    models::Evaluator<E, float> net(cfg);
    ParamStore<E, float> store(net.table());
    const auto s = eval::train_classifier(exec, net, store, train, opt, nullptr);
    EXPECT_EQ(s.steps, 60);
    const auto acc = eval::classifier_accuracy(
        exec, net, Tensor1<const float, E>(store.params.data(), store.size()), test);
    EXPECT_GE(acc.overall, 0.95) << "run " << run;
    EXPECT_EQ(acc.count, (std::vector<long>{20, 20, 20}));
    auto h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), store.params);
    std::vector<float> p(h.data(), h.data() + h.extent(0));
    if (run == 0)
      first = p;
    else
      EXPECT_TRUE(p == first) << "two runs with the same seed differ";
  }
  // an untrained network is near chance: the accuracy above is learnt
  models::Evaluator<E, float> net(cfg);
  net.prepare(32, true);
  ParamStore<E, float> store(net.table(), false);
  models::init_evaluator_params(exec, net.table(),
                                Tensor1<float, E>(store.params.data(), store.size()), 5);
  const auto acc0 = eval::classifier_accuracy(
      exec, net, Tensor1<const float, E>(store.params.data(), store.size()), test);
  EXPECT_LT(acc0.overall, 0.8);
}

TYPED_TEST(EvaluatorTest, RejectsBadLabelsAndShapes) {
  using E = TypeParam;
  std::vector<int32_t> labels = {0, 1, 3};
  std::vector<float> img(3 * 36, 0.0f);
  try {
    eval::upload_images<E>(img, labels, 3, 1, 6, 6, 3, "samples file 'x.h5' /labels");
    FAIL() << "label 3 of 3 classes accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("samples file 'x.h5' /labels: label of image 2 is 3, "
                                         "expected a class in [0, 3)"),
              std::string::npos)
        << e.what();
  }
  labels[2] = 2;
  img.pop_back();
  EXPECT_THROW(eval::upload_images<E>(img, labels, 3, 1, 6, 6, 3, "x"), InputError);
}

TEST(EvaluatorFile, RoundTripAndErrors) {
  namespace fs = std::filesystem;
  const fs::path dir =
      fs::temp_directory_path() / ("dmis-test-evaluator-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  eval::EvaluatorFile e;
  e.config = tiny_config();
  const ParamTable t = models::evaluator_param_table(e.config);
  for (size_t i = 0; i < t.total(); ++i)
    e.params.push_back(0.001f * static_cast<float>(i));
  e.test_accuracy = 0.9125;
  e.test_per_class = {0.9, 0.8, 1.0};
  e.dataset = "fmnist.h5";
  e.labels = "clean_labels";
  e.steps = 42;
  e.batch = 16;
  e.seed = 3;
  e.flip = true;
  const std::string path = (dir / "ev.h5").string();
  eval::write_evaluator(path, e);
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  const auto r = eval::read_evaluator(path);
  EXPECT_EQ(r.params, e.params);
  EXPECT_EQ(r.config.channels, e.config.channels);
  EXPECT_EQ(r.config.strides, e.config.strides);
  EXPECT_EQ(r.config.resolution, 6);
  EXPECT_DOUBLE_EQ(r.test_accuracy, 0.9125);
  EXPECT_EQ(r.test_per_class, e.test_per_class);
  EXPECT_EQ(r.steps, 42);
  EXPECT_EQ(r.labels, "clean_labels");
  { // the tensors are named and shaped datasets, readable without this code
    h5::File f(path, h5::File::Mode::Read);
    EXPECT_EQ(f.shape("/params/conv1.weight"), (std::vector<size_t>{8, 8, 3, 3}));
  }
  // not an evaluator
  const std::string other = (dir / "other.h5").string();
  {
    h5::File f(other, h5::File::Mode::Create);
    f.set_attr("/", "format", std::string("dmis-dataset"));
  }
  try {
    eval::read_evaluator(other);
    FAIL() << "a dataset file read as an evaluator";
  } catch (const InputError& err) {
    EXPECT_NE(std::string(err.what())
                  .find("is not a dmis evaluator (its root attribute 'format' "
                        "is 'dmis-dataset', expected 'dmis-evaluator'"),
              std::string::npos)
        << err.what();
  }
  // a file whose /config says 8 channels in the second stage, with tensors for 16
  {
    eval::EvaluatorFile wide = e;
    wide.config.channels = {8, 16};
    wide.params.assign(models::evaluator_param_table(wide.config).total(), 0.0f);
    h5::File g((dir / "mixed.h5").string(), h5::File::Mode::Create);
    g.set_attr("/", "format", std::string("dmis-evaluator"));
    g.set_attr("/", "format_version", int64_t(1));
    g.make_groups("/config");
    g.set_attr("/config", "in_channels", int64_t(1));
    g.set_attr("/config", "resolution", int64_t(6));
    g.set_attr("/config", "classes", int64_t(3));
    g.set_attr("/config", "groups", int64_t(4));
    g.set_attr("/config", "channels", std::vector<int64_t>{8, 8});
    g.set_attr("/config", "strides", std::vector<int64_t>{1, 2});
    g.set_attr("/config", "gn_eps", 1e-5);
    g.make_groups("/params");
    const ParamTable wt = models::evaluator_param_table(wide.config);
    for (const ParamInfo& p : wt.entries())
      g.write("/params/" + p.name, std::vector<size_t>(p.shape.begin(), p.shape.end()),
              wide.params.data() + p.offset);
  }
  try {
    eval::read_evaluator((dir / "mixed.h5").string());
    FAIL() << "a tensor of the wrong shape accepted";
  } catch (const InputError& err) {
    EXPECT_NE(std::string(err.what())
                  .find("/params/conv1.weight has shape (16, 8, 3, 3), expected "
                        "(8, 8, 3, 3)"),
              std::string::npos)
        << err.what();
  }
  fs::remove_all(dir);
}

} // namespace

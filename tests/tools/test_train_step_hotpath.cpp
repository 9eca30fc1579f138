// The training step under Kokkos Tools callbacks: after its first call it allocates nothing,
// copies nothing between memory spaces and fences nothing, and every kernel it launches is
// labelled "dmis::...". (Kokkos 3.4 reports no fences to tools; see test_kernel_hotpath.)
#include "harness/exec_spaces.hpp"
#include "harness/tools_counters.hpp"
#include "methods/edm_step.hpp"
#include "methods/method_step.hpp"

namespace {
using namespace dmis;
using namespace dmis::test;

template <class E>
class TrainStepHotPath : public ::testing::Test {};
TYPED_TEST_SUITE(TrainStepHotPath, ExecSpaces, ExecSpaceNames);

TYPED_TEST(TrainStepHotPath, StepAllocatesCopiesAndFencesNothing) {
  using E = TypeParam;
  E exec;
  auto cfg = models::UNetConfig::from_preset("unet-s");
  cfg.dropout = 0.1f;  // exercise the dropout kernels too
  methods::TrainStepConfig tc;
  tc.opt.grad_clip = 1.0;
  tc.opt.weight_decay = 0.01;
  const int B = 3;
  methods::EdmTrainStep<E> step(cfg, tc, B);
  step.initialize(models::InitScheme::Adm);
  Kokkos::View<float****, Kokkos::LayoutRight, DeviceOf<E>> x("dmis::test::x0", B, 1, 28, 28);
  Kokkos::View<int*, Kokkos::LayoutRight, DeviceOf<E>> labels("dmis::test::labels", B);
  Kokkos::deep_copy(x, 0.25f);
  Kokkos::deep_copy(labels, 3);
  ToolRecorder recorder;
  step.run(exec, x, labels);  // the first call may size team scratch
  Kokkos::fence();
  recorder.start();
  for (int i = 0; i < 3; ++i) step.run(exec, x, labels);
  recorder.stop();
  Kokkos::fence();
  const auto& ev = recorder.events();
  EXPECT_TRUE(ev.allocations.empty()) << "allocations: " << join(ev.allocations);
  EXPECT_TRUE(ev.deep_copies.empty()) << "deep copies: " << join(ev.deep_copies);
  EXPECT_TRUE(ev.fences.empty()) << "fences: " << join(ev.fences);
  EXPECT_GE(ev.kernels.size(), 3u * 200u) << "too few kernels recorded";
  EXPECT_TRUE(foreign_labels(ev.kernels).empty())
      << "labels without the dmis:: prefix: " << join(foreign_labels(ev.kernels));
  // and the step did train: the loss is a finite number
  double loss = 0, gnorm = 0;
  step.read_scalars(loss, gnorm);
  EXPECT_TRUE(std::isfinite(loss) && loss > 0) << loss;
  EXPECT_TRUE(std::isfinite(gnorm) && gnorm > 0) << gnorm;
  EXPECT_EQ(step.step(), 4);
}

}  // namespace

namespace {
using namespace dmis;
using namespace dmis::test;

template <class E>
class MethodStepHotPath : public ::testing::Test {};
TYPED_TEST_SUITE(MethodStepHotPath, ExecSpaces, ExecSpaceNames);

// DMIS with Ambient's masked objective: the heaviest step (two diffusion classifiers, the extra
// classes, the masks); after its first call it allocates, copies and fences nothing either.
TYPED_TEST(MethodStepHotPath, DmisAmbientStepAllocatesCopiesAndFencesNothing) {
  using E = TypeParam;
  E exec;
  auto cfg = models::UNetConfig::from_preset("unet-s");
  cfg.base = 8, cfg.mults = {1, 2}, cfg.n_blocks = 1, cfg.attn_res = {}, cfg.groups = 4;
  cfg.in_channels = 2;  // image + mask
  methods::TrainStepConfig tc;
  methods::MethodConfig mc;
  mc.kind = methods::MethodKind::Dmis, mc.ambient = true, mc.supervision = methods::dmis_ops::Supervision::Noisy, mc.classifier_fraction = 0.5;
  mc.top_k = 3, mc.gen_extra = 1;
  const int B = 4, R = 28;
  methods::MethodStep<E> step(cfg, tc, mc, B);
  step.initialize(models::InitScheme::Adm);
  Kokkos::View<float****, Kokkos::LayoutRight, DeviceOf<E>> x("dmis::test::x0", B, 1, R, R),
      mask("dmis::test::mask", B, 1, R, R);
  Kokkos::View<int*, Kokkos::LayoutRight, DeviceOf<E>> obs("dmis::test::obs", B), idx("dmis::test::idx", B);
  Kokkos::View<uint8_t**, Kokkos::LayoutRight, DeviceOf<E>> cand("dmis::test::cand", B, 10);
  Kokkos::View<uint8_t*, Kokkos::LayoutRight, DeviceOf<E>> lab("dmis::test::lab", B);
  Kokkos::deep_copy(x, 0.25f);
  Kokkos::deep_copy(mask, 1.0f);
  Kokkos::deep_copy(obs, 3);
  Kokkos::deep_copy(idx, 5);
  Kokkos::deep_copy(cand, 1);
  Kokkos::deep_copy(lab, 1);
  ToolRecorder recorder;
  step.run(exec, x, obs, cand, lab, mask, idx);
  Kokkos::fence();
  recorder.start();
  for (int i = 0; i < 2; ++i) step.run(exec, x, obs, cand, lab, mask, idx);
  recorder.stop();
  Kokkos::fence();
  const auto& ev = recorder.events();
  EXPECT_TRUE(ev.allocations.empty()) << "allocations: " << join(ev.allocations);
  EXPECT_TRUE(ev.deep_copies.empty()) << "deep copies: " << join(ev.deep_copies);
  EXPECT_TRUE(ev.fences.empty()) << "fences: " << join(ev.fences);
  EXPECT_GE(ev.kernels.size(), 2u * 100u) << "too few kernels recorded";
  EXPECT_TRUE(foreign_labels(ev.kernels).empty())
      << "labels without the dmis:: prefix: " << join(foreign_labels(ev.kernels));
  EXPECT_TRUE(step.dmis_active(step.core().step()));
}

}  // namespace

#pragma once
// The ProgressLog of a training run: sums the step's losses and the DMIS diagnostics on the
// device (no copy, no fence on the step), and at a progress point copies them once, checks
// them, and writes the progress line (log.txt and the terminal) and its stats.jsonl record with
// the rate and the ETA. One job, used by train_run (src/train/trainer.cpp):
//
//   ProgressLog<Exec> progress(plan, method, files, root, start);
//   progress.add_step(dmis_on);          // after every step: device-side sums
//   progress.collect(done, last_ckpt);   // at a progress or checkpoint point: to the host,
//                                        //   over the ranks; Error where the loss is NaN
//   progress.report(done, dmis_on);      // at a progress point: the line and the record
#include <Kokkos_Core.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <iomanip>
#include <sstream>
#include <string>

#include "core/error.hpp"
#include "dist/comm.hpp"
#include "io/json_line.hpp"
#include "methods/method_step.hpp"
#include "train/run_files.hpp"
#include "train/trainer.hpp"

namespace dmis::train {

/// "42s", "3m07s", "2h05m".
inline std::string duration(double s) {
  std::ostringstream os;
  const long t = static_cast<long>(std::lround(s));
  if (t >= 3600) os << t / 3600 << "h" << std::setw(2) << std::setfill('0') << (t % 3600) / 60 << "m";
  else if (t >= 60) os << t / 60 << "m" << std::setw(2) << std::setfill('0') << t % 60 << "s";
  else os << t << "s";
  return os.str();
}

template <class Exec>
class ProgressLog {
  static constexpr int ND = methods::dmis_ops::kDiagnostics;
  template <class T>
  using Buf = Kokkos::View<T*, Kokkos::LayoutRight, typename Exec::memory_space>;

public:
  /// start: the step the run starts (or resumes) at.
  ProgressLog(const RunPlan& plan, methods::MethodStep<Exec>& method, RunFiles& files, bool root,
              long start)
      : m_plan(plan), m_method(method), m_files(files), m_root(root), m_ranks(dist::size()),
        m_acc("dmis::train::loss_sums", 3), m_last("dmis::train::last", 3),
        m_dacc("dmis::train::diag_sums", 2 * ND + 1),
        m_acc_host(Kokkos::create_mirror_view(m_acc)), m_last_host(Kokkos::create_mirror_view(m_last)),
        m_dacc_host(Kokkos::create_mirror_view(m_dacc)),
        m_dmis(plan.method.kind == methods::MethodKind::Dmis) {
    Kokkos::deep_copy(m_acc, 0.0f);
    Kokkos::deep_copy(m_dacc, 0.0f);
    // the first step with the DMIS terms (they cost more: the ETA of a warm-up counts them in)
    m_dmis_from = plan.steps;
    if (m_dmis)
      for (long k = start; k < plan.steps; ++k)
        if (method.dmis_active(k)) {
          m_dmis_from = k;
          break;
        }
    m_dmis_cost = static_cast<double>(method.evaluations_per_step(true)) / method.evaluations_per_step(false);
    m_t_start = m_t_log = std::chrono::steady_clock::now();
  }

  /// After a step: its losses into the running sums, and its DMIS diagnostics where the DMIS
  /// terms were on (device kernels; the last step's values kept too).
  void add_step(bool dmis_on) {
    auto acc = m_acc, last = m_last, dacc = m_dacc;
    auto gen = m_method.loss_gen();
    auto cls = m_method.loss_cls();
    auto gn = m_method.core().grad_norm2();
    Kokkos::parallel_for(
        "dmis::train::loss_sums", Kokkos::RangePolicy<Exec>(0, 1), KOKKOS_LAMBDA(int) {
          acc(0) += gen(0);
          acc(1) += cls(0);
          acc(2) += gn(0);
          last(0) = gen(0);
          last(1) = cls(0);
          last(2) = gn(0);
        });
    if (dmis_on) {
      auto diag = m_method.diagnostics();
      Kokkos::parallel_for(
          "dmis::train::diag_sums", Kokkos::RangePolicy<Exec>(0, 1), KOKKOS_LAMBDA(int) {
            // a diagnostic that a step leaves undefined (NaN: no sample it counts) is left out
            // of that diagnostic's mean, not of the others'
            for (int i = 0; i < ND; ++i) {
              const bool defined = diag(i) == diag(i);
              dacc(i) += defined ? diag(i) : 0.f;
              dacc(ND + 1 + i) += defined ? 1.f : 0.f;
            }
            dacc(ND) += 1;
          });
    }
    ++m_steps;
  }

  /// The sums to the host (the losses averaged over the ranks; the gradient norm is already
  /// global). An Error naming the step and the last good checkpoint where a loss is not a number.
  void collect(long done, const std::string& last_checkpoint) {
    Kokkos::fence();
    Kokkos::deep_copy(m_acc_host, m_acc);
    Kokkos::deep_copy(m_last_host, m_last);
    Kokkos::deep_copy(m_dacc_host, m_dacc);
    if (m_ranks > 1) {
      double v[4] = {m_acc_host(0), m_acc_host(1), m_last_host(0), m_last_host(1)};
      dist::allreduce_sum(v, 4);
      m_acc_host(0) = v[0] / m_ranks, m_acc_host(1) = v[1] / m_ranks;
      m_last_host(0) = v[2] / m_ranks, m_last_host(1) = v[3] / m_ranks;
    }
    m_gen = m_acc_host(0) / m_steps, m_cls = m_acc_host(1) / m_steps;
    m_gnorm = std::sqrt(std::max(0.0, static_cast<double>(m_acc_host(2)) / m_steps));
    if (!std::isfinite(m_gen) || !std::isfinite(m_cls) || !std::isfinite(m_acc_host(2)))
      throw Error(cat("step ", done, ": the loss is not a number (generative ", m_gen,
                      ", classification ", m_cls, ", gradient norm^2 ", m_acc_host(2),
                      "); training stopped. Last good checkpoint: ", last_checkpoint,
                      ". Lower train.lr or set train.grad_clip, then resume from it."));
  }

  /// The progress line and its stats.jsonl record of the steps since the last one (after
  /// collect), then the sums restart.
  void report(long done, bool dmis_on) {
    const auto now = std::chrono::steady_clock::now();
    const double dt = std::chrono::duration<double>(now - m_t_log).count();
    const double elapsed = std::chrono::duration<double>(now - m_t_start).count();
    const double sps = dt / m_steps;
    m_rate = m_rate == 0 ? sps : 0.7 * m_rate + 0.3 * sps;
    // measured rate for the phase we are in; the DMIS phase, not yet measured during the
    // warm-up, estimated by its denoiser evaluations per step
    const long steps = m_plan.steps;
    const double eta = done < m_dmis_from
                           ? m_rate * ((m_dmis_from - done) + m_dmis_cost * (steps - m_dmis_from))
                           : m_rate * (steps - done);
    const double kimg = done * m_plan.batch / 1e3;
    if (m_root) {
      m_files.log(line(done, kimg, sps, eta));
      m_files.stats(record(done, kimg, sps, elapsed, dmis_on));
    }
    Kokkos::deep_copy(m_acc, 0.0f);
    Kokkos::deep_copy(m_dacc, 0.0f);
    m_steps = 0;
    m_t_log = now;
  }

  /// Seconds since the log was made (the run's start).
  double elapsed() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - m_t_start).count();
  }

private:
  using D = methods::dmis_ops::Diagnostic;
  // the mean of diagnostic i over the DMIS steps since the last line that define it (NaN: none)
  double dmean(int i) const {
    const double n = m_dacc_host(ND + 1 + i);
    return n > 0 ? m_dacc_host(i) / n : std::nan("");
  }

  std::string line(long done, double kimg, double sps, double eta) const {
    std::ostringstream o;
    o << "step " << done << "/" << m_plan.steps << " | kimg " << std::fixed << std::setprecision(1)
      << kimg << " | loss " << std::setprecision(4) << m_gen;
    if (m_dmis) o << " cls " << std::setprecision(4) << m_cls;
    if (m_dacc_host(ND) > 0) {
      o << " s " << std::setprecision(0) << dmean(D::kLogitScale) << " H " << std::setprecision(2)
        << dmean(D::kEntropyTarget);
      if (std::isfinite(dmean(D::kAccTarget)))
        o << " acc " << std::setprecision(1) << 100 * dmean(D::kAccTarget) << "%";
    }
    o << " | grad " << std::setprecision(3) << m_gnorm << " | " << std::setprecision(0)
      << m_plan.batch / sps << " img/s | " << std::setprecision(0) << sps * 1e3 << " ms/step | ETA "
      << duration(eta);
    return o.str();
  }

  std::string record(long done, double kimg, double sps, double elapsed, bool dmis_on) const {
    io::JsonLine j;
    j.add("step", done).add("kimg", kimg).add("loss", m_gen).add("loss_cls", m_cls)
        .add("loss_last", m_last_host(0)).add("loss_cls_last", m_last_host(1))
        .add("grad_norm", m_gnorm).add("lr", m_method.core().learning_rate(done))
        .add("img_per_s", m_plan.batch / sps).add("sec_per_step", sps).add("dmis", dmis_on);
    if (m_dacc_host(ND) > 0) {  // the DMIS internals (spec: observable while it trains)
      constexpr int p = 6;
      j.add("logit_scale", dmean(D::kLogitScale), p)
          .add("target_entropy", dmean(D::kEntropyTarget), p)
          .add("ema_entropy", dmean(D::kEntropyEma), p)
          .add("target_acc", dmean(D::kAccTarget), p)
          .add("ema_acc", dmean(D::kAccEma), p)
          .add("gen_acc", dmean(D::kAccGen), p)
          .add("observed_acc", dmean(D::kAccObserved), p)
          .add("relabeled", dmean(D::kRelabeled), p)
          .add("relabel_acc", dmean(D::kRelabelAcc), p)
          .add("relabel_was_right", dmean(D::kRelabelWasRight), p)
          .add("pseudo_share", dmean(D::kPseudoShare), p)
          .add("pseudo_acc", dmean(D::kPseudoAcc), p)
          .add("grad_norm_cls", std::sqrt(dmean(D::kGradNorm2Cls)), p)
          .add("grad_norm_gen", std::sqrt(dmean(D::kGradNorm2Gen)), p);
      if (m_plan.method.supervision == methods::dmis_ops::Supervision::Noisy) {
        // 1 - the mean diagonal of the estimated T
        auto th = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), m_method.transition());
        double diag = 0;
        for (size_t y = 0; y < th.extent(0); ++y) diag += th(y, y);
        j.add("noise_rate_estimate", 1 - diag / th.extent(0), p);
      }
    }
    j.add("time", elapsed);
    return j.str();
  }

  const RunPlan& m_plan;
  methods::MethodStep<Exec>& m_method;
  RunFiles& m_files;
  bool m_root;
  int m_ranks;
  // device sums since the last line: generative loss, classification loss, squared gradient
  // norm; the last step's values; the DMIS diagnostics' sums (ND), the DMIS steps (1) and the
  // steps that define each diagnostic (ND)
  Buf<float> m_acc, m_last, m_dacc;
  typename Buf<float>::HostMirror m_acc_host, m_last_host, m_dacc_host;
  bool m_dmis;
  long m_dmis_from = 0, m_steps = 0;
  double m_dmis_cost = 1, m_rate = 0, m_gen = 0, m_cls = 0, m_gnorm = 0;
  std::chrono::steady_clock::time_point m_t_start, m_t_log;
};

}  // namespace dmis::train

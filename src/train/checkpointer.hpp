#pragma once
// The Checkpointer of a training run: assembles the training state of the step (parameters,
// Adam moments, EMA, the method's state) into a checkpoint and writes it, and puts a resumed
// checkpoint's state back. One job, used by train_run (src/train/trainer.cpp):
//
//   Checkpointer<Exec> ckpt(plan, method, files, root, resume_from);
//   ckpt.restore(checkpoint, path);   // a resumed run, before the loop
//   ckpt.save(step);                  // every plan.checkpoint_every steps
//
// Files (rank 0): ema-NNNNNNNN.h5 (the EMA weights alone, what sample and classify read) first,
// then ckpt-NNNNNNNN.h5 (the whole state), then the oldest of each pruned to plan.keep. A run
// killed between the two resumes from the previous checkpoint and writes this snapshot again;
// the other order would resume from this checkpoint and never write its snapshot.
#include <Kokkos_Core.hpp>
#include <cmath>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "dist/comm.hpp"
#include "io/checkpoint.hpp"
#include "methods/method_step.hpp"
#include "train/run_files.hpp"
#include "train/trainer.hpp"

namespace dmis::train {

/// The values of a device view (any rank, contiguous) as a host vector.
template <class V>
std::vector<float> to_host(const V& v) {
  auto h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), v);
  return std::vector<float>(h.data(), h.data() + h.span());
}
/// A host vector (of any arithmetic type) into a contiguous device view, converted.
template <class V, class S>
void from_host(const V& v, const std::vector<S>& src) {
  auto h = Kokkos::create_mirror_view(v);
  for (size_t i = 0; i < src.size(); ++i) h.data()[i] = src[i];
  Kokkos::deep_copy(v, h);
}

/// The optimizer's state of a parameter store (parameters, Adam moments, EMA) into a checkpoint,
/// and back: the one definition of a training state's arrays (train_run and DiffEM's laps).
template <class Store>
void state_to_checkpoint(const Store& store, io::CheckpointData& ck) {
  ck.params = to_host(store.params);
  ck.adam_m = to_host(store.adam_m);
  ck.adam_v = to_host(store.adam_v);
  ck.ema = to_host(store.ema);
}
template <class Store>
void state_from_checkpoint(const io::CheckpointData& ck, Store& store) {
  from_host(store.params, ck.params);
  from_host(store.adam_m, ck.adam_m);
  from_host(store.adam_v, ck.adam_v);
  from_host(store.ema, ck.ema);
}

template <class Exec>
class Checkpointer {
public:
  /// resumed_from: the checkpoint the run starts from (empty: a fresh run).
  Checkpointer(const RunPlan& plan, methods::MethodStep<Exec>& method, RunFiles& files, bool root,
               const std::string& resumed_from)
      : m_plan(plan), m_deck(plan.deck_text), m_method(method), m_files(files), m_root(root),
        m_last(resumed_from.empty() ? std::string("none") : resumed_from) {}

  /// The last good checkpoint: the last written by this run, or the one it resumed from, or
  /// "none" (what a stopped run's message points the user to).
  const std::string& last() const { return m_last; }

  /// The training state of `ck` (read from `path`, a ckpt-*.h5) into the step: parameters, Adam
  /// moments, EMA, the method's prior, transition counts and logit scale, the epoch's prior
  /// counts (rank 0 carries their sum over ranks) and the step. A checkpoint of another kind, or
  /// one whose method state does not fit the network and deck, is an InputError naming `path`.
  void restore(const io::CheckpointData& ck, const std::string& path) {
    auto& core = m_method.core();
    auto& store = core.store();
    io::check_layout(ck, path, core.net().table());
    if (ck.kind != "training-state")
      throw InputError(cat("cannot resume from '", path, "': it is an ", ck.kind,
                           " (no optimizer state); resume from a ckpt-*.h5 file"));
    if (ck.params.empty() || ck.adam_m.empty() || ck.adam_v.empty())
      throw InputError(cat("cannot resume from '", path, "': parameters or Adam moments missing"));
    state_from_checkpoint(ck, store);
    // the method's state: a value the network and deck cannot take names the file
    try {
      if (!ck.prior.empty()) {
        std::vector<double> pi(ck.prior.begin(), ck.prior.end());
        m_method.set_prior(pi);
      }
      if (!ck.transition.empty()) m_method.set_transition_counts(ck.transition);
      if (!ck.logit_scale.empty()) m_method.set_logit_scale(ck.logit_scale[0]);
      if (!ck.estep_params.empty()) m_method.set_estep_params(ck.estep_params);
    } catch (const InputError& e) {
      throw InputError(cat("cannot resume from '", path, "': /method: ", e.what()));
    }
    if (!ck.prior_counts.empty()) {  // the sum over ranks: rank 0 carries it
      auto hc = Kokkos::create_mirror_view(m_method.prior_counts());
      for (size_t i = 0; i < ck.prior_counts.size() && i < hc.extent(0); ++i)
        hc(i) = m_root ? ck.prior_counts[i] : 0;
      Kokkos::deep_copy(m_method.prior_counts(), hc);
    }
    core.set_step(ck.step);
    if (m_root) {
      m_files.truncate_stats_after(ck.step);
      m_files.log(cat("resumed from ", path, " at step ", ck.step));
    }
  }

  /// The EMA snapshot and the checkpoint of `step` (rank 0 writes; every rank takes part in the
  /// sum of the prior counts). Weights that are not finite write nothing and stop the run with
  /// an Error naming the last good checkpoint.
  void save(long step) {
    Kokkos::fence();
    auto& core = m_method.core();
    auto& store = core.store();
    io::CheckpointData ck;
    ck.kind = "training-state";
    ck.step = step;
    ck.images_seen = static_cast<double>(step) * m_plan.batch;
    ck.seed = m_plan.seed;
    ck.deck = m_deck;
    ck.preset = m_plan.net.preset;
    ck.table = core.net().table();
    state_to_checkpoint(store, ck);
    // weights gone to NaN or inf (the loss may still be finite at this step): no checkpoint
    // that the NaN guard would later call good
    for (const auto* w : {&ck.params, &ck.ema})
      for (float x : *w)
        if (!std::isfinite(x))
          throw Error(cat("step ", step, ": the weights are not finite numbers (NaN or inf); no "
                          "checkpoint written, training stopped. Last good checkpoint: ", m_last,
                          ". Lower train.lr or set train.grad_clip, then resume from it."));
    ck.prior = to_host(m_method.prior());
    // the DMIS state once the DMIS terms have run (before, it is the deck's starting point, so
    // that a run resumed from the warm-up with other method keys starts from its own)
    if (m_plan.method.kind == methods::MethodKind::Dmis && step > 0 && m_method.dmis_active(step - 1)) {
      ck.transition = to_host(m_method.transition_counts());
      ck.logit_scale = to_host(m_method.logit_scale());
      ck.estep_params = to_host(m_method.estep_params());  // empty under estep_network ema
    }
    auto hc = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), m_method.prior_counts());
    ck.prior_counts.assign(hc.data(), hc.data() + hc.extent(0));
    dist::allreduce_sum(ck.prior_counts.data(), ck.prior_counts.size());
    if (!m_root) return;
    io::CheckpointData snap = ck;
    snap.kind = "ema-snapshot";
    snap.params.clear(), snap.adam_m.clear(), snap.adam_v.clear(), snap.prior_counts.clear();
    snap.transition.clear(), snap.logit_scale.clear(), snap.estep_params.clear();
    io::write_checkpoint(io::checkpoint_path(m_plan.run_dir, "ema", step), snap);
    const std::string path = io::checkpoint_path(m_plan.run_dir, "ckpt", step);
    io::write_checkpoint(path, ck);
    m_files.prune("ckpt", m_plan.keep);
    m_files.prune("ema", m_plan.keep);
    m_last = path;
    m_files.log(cat("checkpoint ", path));
  }

private:
  const RunPlan& m_plan;
  std::string m_deck;
  methods::MethodStep<Exec>& m_method;
  RunFiles& m_files;
  bool m_root;
  std::string m_last;
};

}  // namespace dmis::train

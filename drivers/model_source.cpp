#include "model_source.hpp"

#include <filesystem>

#include "core/error.hpp"
#include "train/trainer.hpp"

namespace dmis::cli {

namespace fs = std::filesystem;

ModelSource load_model_source(const DeckArgs& a) {
  if (a.deck.empty()) throw UsageError("missing the deck or checkpoint file");
  const bool is_checkpoint = fs::path(a.deck).extension() == ".h5";
  ModelSource m;
  if (is_checkpoint) {
    m.checkpoint = a.deck;
    m.data = io::read_checkpoint(m.checkpoint);
    m.deck = deck::Deck::parse(m.data.deck, m.checkpoint + " (its deck)", a.sets);
    m.run_dir = fs::path(m.checkpoint).parent_path().string();
  } else {
    m.deck = load_deck(a);
    m.run_dir = train::run_directory(m.deck);
    const auto snaps = io::list_checkpoints(m.run_dir, "ema");
    if (snaps.empty())
      throw InputError(cat("no EMA snapshot (ema-*.h5) in '", m.run_dir,
                           "': train first (dmis train ", a.deck, "), or pass a checkpoint file"));
    m.checkpoint = snaps.back();
    m.data = io::read_checkpoint(m.checkpoint);
  }
  const ParamInfo* table = m.data.table.find("emb.class_table.weight");
  if (!table || table->shape.size() != 2)
    throw InputError(cat("checkpoint '", m.checkpoint, "' has no class table"));
  m.net = train::network_from_deck(m.deck, table->shape[0] - 1);
  // the stored layout must be the network's (names and shapes), before any weight is used
  const ParamTable expect = models::unet_param_table(m.net);
  const std::string diff = expect.first_difference(m.data.table);
  if (!diff.empty())
    throw InputError(cat("checkpoint '", m.checkpoint, "' does not match its deck's network: ",
                         diff));
  return m;
}

Kokkos::View<float*, Kokkos::LayoutRight, Kokkos::DefaultExecutionSpace::memory_space> device_weights(
    const ModelSource& m, bool use_ema, const std::string& label) {
  Kokkos::View<float*, Kokkos::LayoutRight, Kokkos::DefaultExecutionSpace::memory_space> params(
      label, m.data.table.total());
  const auto& src = use_ema ? m.data.ema : m.data.params;
  if (src.size() != params.extent(0))
    throw InputError(cat("'", m.checkpoint, "' holds ", src.size(), use_ema ? " EMA" : " raw",
                         " parameters; its network has ", params.extent(0)));
  auto h = Kokkos::create_mirror_view(params);
  for (size_t i = 0; i < src.size(); ++i) h(i) = src[i];
  Kokkos::deep_copy(params, h);
  return params;
}

}  // namespace dmis::cli

#pragma once
// The files of a run directory: log.txt (every progress line, also printed), stats.jsonl (one
// JSON record per progress line), deck.yaml (the resolved deck) and the checkpoints. Only rank 0
// writes. Text files that are replaced are written to a temporary name and renamed.
#include <optional>
#include <string>
#include <vector>

#include "io/checkpoint.hpp"

namespace dmis::deck {
struct KeyRef;
}

namespace dmis::train {

class RunFiles {
public:
  RunFiles(const std::string& dir, bool writer);
  ~RunFiles();
  RunFiles(const RunFiles&) = delete;
  RunFiles& operator=(const RunFiles&) = delete;
  /// The directory holds a run already (a deck.yaml or a checkpoint).
  bool holds_run() const;
  /// Creates the directory (and parents), checks it is writable and takes its lock (.lock,
  /// an exclusive flock held while this object lives: a second run writing the same directory
  /// stops with an InputError); InputError otherwise.
  void create();
  void log(const std::string& line);
  void stats(const std::string& json_line);
  void write_text(const std::string& name, const std::string& text);
  /// Drops stats.jsonl records after `step` (a resumed run logs them again).
  void truncate_stats_after(long step);
  /// Keeps the newest `keep` complete "<prefix>-*.h5" files.
  void prune(const std::string& prefix, long keep);
  const std::string& dir() const { return m_dir; }

private:
  std::string m_dir;
  bool m_writer;
  int m_lock = -1;  // the lock file's descriptor while held
};

/// run.resume, resolved: a fresh run (none), the newest complete checkpoint (latest), or a
/// given checkpoint (any other value: its path).
struct Resume {
  enum class Mode { None, Latest, Path };
  Mode mode = Mode::None;
  std::string path;  // Mode::Path: the checkpoint
  static Resume parse(const std::string& value);
};

/// Where a run starts: run.resume against what the run directory holds.
struct ResumePoint {
  std::string from;                              // the checkpoint to resume from; empty: step 0
  std::optional<io::CheckpointData> checkpoint;  // latest: that checkpoint, already read
  std::vector<std::string> notes;                // for the log: damaged checkpoints passed over,
                                                 // a start from step 0 despite latest
  bool restarted = false;  // latest without a complete checkpoint: the stopped run's stats go
};
/// The resume policy. none: the directory must not hold a run; latest: the newest checkpoint
/// that reads and verifies (damaged ones are passed over and named; none at all: step 0); a
/// path: that checkpoint (read later). A DeckError naming run.resume where the policy cannot
/// be followed. Reads only (every rank may call it before the directory is created).
ResumePoint resume_point(const RunFiles& files, const Resume& resume, const deck::KeyRef& resume_key);

/// Writes `text` to `path` through a temporary file and a rename.
void write_file_atomic(const std::string& path, const std::string& text);

}  // namespace dmis::train

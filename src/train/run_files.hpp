#pragma once
// The files of a run directory: log.txt (every progress line, also printed), stats.jsonl (one
// JSON record per progress line), deck.yaml (the resolved deck) and the checkpoints. Only rank 0
// writes. Text files that are replaced are written to a temporary name and renamed.
#include <string>

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

/// Writes `text` to `path` through a temporary file and a rename.
void write_file_atomic(const std::string& path, const std::string& text);

}  // namespace dmis::train

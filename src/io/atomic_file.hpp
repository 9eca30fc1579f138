#pragma once
// All-or-nothing output files: every writer of dmis (run files, datasets, supervision,
// checkpoints, the evaluator, samples, PNG grids, posteriors, DiffEM's laps) writes into a
// temporary file beside the target and renames it over the target only once the file is
// complete and its close checked. A writer that fails (a full disk, an exception, a bad value
// found half way) or is killed leaves the target as it was: the previous version or nothing.
#include <string>

namespace dmis::io {

/// One atomic write of `path`. Write into tmp(), then commit(): the rename onto path. Destroyed
/// uncommitted (an exception on the way), it removes tmp() and path is untouched.
///
///   io::AtomicFile out(path);
///   write_everything(out.tmp());
///   out.commit();
class AtomicFile {
public:
  /// The temporary file is path + suffix (".tmp"; DiffEM's lap files use ".part").
  explicit AtomicFile(std::string path, const std::string& suffix = ".tmp");
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  const std::string& path() const { return m_path; }
  const std::string& tmp() const { return m_tmp; }

  /// Renames tmp() onto path(); an InputError naming both (tmp() removed) when that fails.
  /// Test hook: with DMIS_TEST_KILL_AT_COMMIT set to a suffix of path(), the process kills
  /// itself (SIGKILL) here instead, as a kill between the last byte and the rename would.
  void commit();

private:
  std::string m_path, m_tmp;
  bool m_committed = false;
};

/// AtomicFile in one call: fill(tmp) writes the whole file at tmp, then it is committed.
template <class Fill>
void write_atomic_file(const std::string& path, Fill&& fill) {
  AtomicFile out(path);
  fill(out.tmp());
  out.commit();
}

}  // namespace dmis::io

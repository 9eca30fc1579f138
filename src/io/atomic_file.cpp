#include "io/atomic_file.hpp"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "core/error.hpp"

namespace dmis::io {

AtomicFile::AtomicFile(std::string path, const std::string& suffix)
    : m_path(std::move(path)), m_tmp(m_path + suffix) {}

AtomicFile::~AtomicFile() {
  if (!m_committed) std::remove(m_tmp.c_str());
}

void AtomicFile::commit() {
  // Fault injection for the tests (tests/train/killed_writers.cmake): the process killed with
  // every byte of the file written and nothing renamed yet, the latest point a kill can hit.
  if (const char* kill = std::getenv("DMIS_TEST_KILL_AT_COMMIT"); kill != nullptr && *kill != 0) {
    const std::string name(kill);
    if (m_path.size() >= name.size() && m_path.compare(m_path.size() - name.size(), name.size(), name) == 0)
      std::raise(SIGKILL);
  }
  if (std::rename(m_tmp.c_str(), m_path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    std::remove(m_tmp.c_str());
    m_committed = true;  // nothing left to remove
    throw InputError(cat("cannot move '", m_tmp, "' to '", m_path, "': ", why));
  }
  m_committed = true;
}

}  // namespace dmis::io

#include "train/run_files.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include "core/error.hpp"
#include "core/io_error.hpp"
#include "deck/deck.hpp"
#include "io/atomic_file.hpp"
#include "io/checkpoint.hpp"

namespace dmis::train {

namespace fs = std::filesystem;

void write_file_atomic(const std::string& path, const std::string& text) {
  io::write_atomic_file(path, [&](const std::string& tmp) {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw InputError(cat("cannot write '", tmp, "': ", std::strerror(errno)));
    f << text;
    f.flush();
    if (!f) throw InputError(cat("cannot write '", tmp, "': ", write_failure_cause(tmp)));
  });
}

RunFiles::RunFiles(const std::string& dir, bool writer) : m_dir(dir), m_writer(writer) {}

RunFiles::~RunFiles() {
  if (m_lock >= 0) ::close(m_lock);  // releases the flock
}

bool RunFiles::holds_run() const {
  std::error_code ec;
  return fs::exists(fs::path(m_dir) / "deck.yaml", ec) ||
         !io::list_checkpoints(m_dir, "ckpt").empty();
}

void RunFiles::create() {
  if (!m_writer) return;
  std::error_code ec;
  fs::create_directories(m_dir, ec);
  if (ec)
    throw InputError(cat("cannot create the run directory '", m_dir, "': ", ec.message(),
                         " (set run.out_dir to a writable place)"));
  const std::string probe = (fs::path(m_dir) / ".dmis-write-test").string();
  std::ofstream f(probe);
  if (!f)
    throw InputError(cat("the run directory '", m_dir, "' is not writable: ", std::strerror(errno),
                         " (set run.out_dir to a writable place)"));
  f.close();
  std::remove(probe.c_str());
  // one writer per run directory: two runs resuming it at once would both write stats.jsonl
  // and the checkpoints (the lock goes with the process, also when it is killed)
  const std::string lock = (fs::path(m_dir) / ".lock").string();
  m_lock = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (m_lock < 0)
    throw InputError(cat("cannot open the lock file '", lock, "': ", std::strerror(errno)));
  if (::flock(m_lock, LOCK_EX | LOCK_NB) != 0) {
    const int e = errno;
    ::close(m_lock);
    m_lock = -1;
    throw InputError(cat("the run directory '", m_dir, "' is in use by another run (",
                         e == EWOULDBLOCK ? std::string("its lock '") + lock + "' is held"
                                          : std::string(std::strerror(e)),
                         "); wait for it to end, or choose another run.name"));
  }
}

namespace {
// appends one line; a line that does not reach the file (a full disk) is an error, not a record
// cut short in silence
void append_line(const fs::path& p, const std::string& line) {
  errno = 0;
  std::ofstream f(p, std::ios::app);
  f << line << "\n";
  f.flush();
  if (!f) throw InputError(cat("cannot write '", p.string(), "': ", write_failure_cause(p.string())));
}
}  // namespace

void RunFiles::log(const std::string& line) {
  if (!m_writer) return;
  std::cout << line << std::endl;
  append_line(fs::path(m_dir) / "log.txt", line);
}

void RunFiles::stats(const std::string& json_line) {
  if (!m_writer) return;
  append_line(fs::path(m_dir) / "stats.jsonl", json_line);
}

void RunFiles::write_text(const std::string& name, const std::string& text) {
  if (!m_writer) return;
  write_file_atomic((fs::path(m_dir) / name).string(), text);
}

void RunFiles::truncate_stats_after(long step) {
  if (!m_writer) return;
  const fs::path p = fs::path(m_dir) / "stats.jsonl";
  std::ifstream in(p);
  if (!in) return;
  std::string line, kept;
  while (std::getline(in, line)) {
    // a record cut short (a write that failed half-way) is dropped with the later ones
    const auto at = line.find("\"step\": ");
    if (at == std::string::npos || line.empty() || line.back() != '}') continue;
    const long s = std::atol(line.c_str() + at + 8);
    if (s <= step) kept += line + "\n";
  }
  in.close();
  write_file_atomic(p.string(), kept);
}

void RunFiles::prune(const std::string& prefix, long keep) {
  if (!m_writer) return;
  const auto all = io::list_checkpoints(m_dir, prefix);
  for (size_t i = 0; i + keep < all.size(); ++i) std::remove(all[i].c_str());
}

Resume Resume::parse(const std::string& value) {
  Resume r;
  if (value == "latest")
    r.mode = Mode::Latest;
  else if (value != "none")
    r.mode = Mode::Path, r.path = value;
  return r;
}

ResumePoint resume_point(const RunFiles& files, const Resume& resume, const deck::KeyRef& resume_key) {
  ResumePoint at;
  const std::string& dir = files.dir();
  if (resume.mode == Resume::Mode::None) {
    if (files.holds_run())
      resume_key.fail(cat("the run directory '", dir, "' already holds a run; set "
                               "run.resume: latest to continue it, or choose another run.name"));
  } else if (resume.mode == Resume::Mode::Latest) {
    // the newest checkpoint that reads and verifies (a damaged one, e.g. written to a full
    // disk, is skipped and said); none (a run stopped before its first, or no run yet): from
    // step 0
    const auto ck = io::list_checkpoints(dir, "ckpt");
    std::vector<std::string> skipped;
    for (auto it = ck.rbegin(); it != ck.rend() && at.from.empty(); ++it) {
      try {
        at.checkpoint = io::read_checkpoint(*it);
        at.from = *it;
      } catch (const InputError& e) {
        skipped.push_back(cat("run.resume latest: skipping ", *it, ": ", e.what()));
      }
    }
    if (!ck.empty() && at.from.empty()) {
      std::string why;
      for (const auto& s : skipped) why += "\n  " + s;
      resume_key.fail(cat("'latest', but none of the ", ck.size(), " checkpoints of '", dir,
                               "' can be read:", why));
    }
    at.notes = skipped;
    if (ck.empty()) {
      at.restarted = true;
      at.notes.push_back(cat("run.resume: latest, but '", dir, "' holds no complete checkpoint",
                             files.holds_run() ? " (the run stopped before its first)" : "",
                             ": starting from step 0"));
    }
  } else {
    at.from = resume.path;
  }
  return at;
}

}  // namespace dmis::train

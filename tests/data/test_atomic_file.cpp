// io::AtomicFile, the one all-or-nothing write every output file of dmis goes through: the
// target changes only at commit, an abandoned write removes its temporary file and leaves the
// target as it was, a failed rename names both files. (A process killed before the rename:
// tests/train/killed_writers.cmake, for each kind of output file.)
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "data_test_util.hpp"
#include "io/atomic_file.hpp"

namespace dmis::test {
namespace {

namespace fs = std::filesystem;

void put(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
}

std::string get(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

TEST(AtomicFile, TheTargetChangesOnlyAtCommit) {
  ScratchDir dir("atomic");
  const std::string path = dir.file("out.txt");
  put(path, "old");
  io::AtomicFile out(path);
  EXPECT_EQ(out.path(), path);
  EXPECT_EQ(out.tmp(), path + ".tmp");
  put(out.tmp(), "new");
  EXPECT_EQ(get(path), "old");  // written, not yet committed
  out.commit();
  EXPECT_EQ(get(path), "new");
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST(AtomicFile, AnAbandonedWriteLeavesTheTargetAndRemovesItsTemporary) {
  ScratchDir dir("atomic");
  const std::string path = dir.file("out.txt"), fresh = dir.file("fresh.txt");
  put(path, "old");
  EXPECT_THROW(
      {
        io::AtomicFile out(path);
        put(out.tmp(), "half");
        throw std::runtime_error("a failure half way");
      },
      std::runtime_error);
  EXPECT_EQ(get(path), "old");
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  // a target that did not exist still does not
  EXPECT_THROW(io::write_atomic_file(fresh, [](const std::string& tmp) {
                 put(tmp, "half");
                 throw std::runtime_error("a failure half way");
               }),
               std::runtime_error);
  EXPECT_FALSE(fs::exists(fresh));
  EXPECT_FALSE(fs::exists(fresh + ".tmp"));
}

TEST(AtomicFile, WriteAtomicFileAndAnotherSuffix) {
  ScratchDir dir("atomic");
  const std::string path = dir.file("lap-01.h5");
  io::write_atomic_file(path, [](const std::string& tmp) { put(tmp, "whole"); });
  EXPECT_EQ(get(path), "whole");
  io::AtomicFile part(path, ".part");
  EXPECT_EQ(part.tmp(), path + ".part");
  put(part.tmp(), "next");
  part.commit();
  EXPECT_EQ(get(path), "next");
  EXPECT_FALSE(fs::exists(path + ".part"));
}

TEST(AtomicFile, AFailedRenameNamesBothFilesAndRemovesTheTemporary) {
  ScratchDir dir("atomic");
  // the target is a non-empty directory: a file cannot be renamed onto it
  const std::string path = dir.file("taken");
  fs::create_directories(path);
  put(path + "/inside", "x");
  io::AtomicFile out(path);
  put(out.tmp(), "new");
  const std::string msg = input_error([&] { out.commit(); });
  EXPECT_NE(msg.find("cannot move '" + path + ".tmp' to '" + path + "'"), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  EXPECT_TRUE(fs::is_directory(path));
}

}  // namespace
}  // namespace dmis::test

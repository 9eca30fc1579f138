#pragma once
// A thin, checked layer over the HDF5 C API: every call is checked, and a failure throws
// dmis::InputError naming the file, the object and the operation. Files written here are
// self-describing (named datasets, attributes), readable with h5py or h5dump.
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "io/atomic_file.hpp"

namespace dmis::h5 {

/// A dataset read into memory: its shape and values.
template <class T>
struct Array {
  std::vector<size_t> shape;
  std::vector<T> data;
  size_t size() const { return data.size(); }
};

class File {
public:
  // Create truncates; CreateSigned also reserves the 512-byte user block that
  // io::write_file_digest fills once the file is closed (io/file_digest.hpp)
  enum class Mode { Read, Create, CreateSigned };
  File(const std::string& path, Mode mode);
  ~File();
  File(File&& other) noexcept;
  File& operator=(File&&) = delete;
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  /// Flushes and closes a file being written, checking both: a write that did not reach the
  /// disk (a full disk, an I/O error) throws naming the file and the cause, so that its caller
  /// never renames it into place. The destructor closes without checking (error paths).
  void close();
  const std::string& path() const { return m_path; }
  bool exists(const std::string& object) const;
  /// Names of the members of a group.
  std::vector<std::string> list(const std::string& group) const;
  /// Shape of a dataset (throws naming it if absent).
  std::vector<size_t> shape(const std::string& dataset) const;

  Array<float> read_float(const std::string& dataset) const;
  Array<double> read_double(const std::string& dataset) const;
  Array<int32_t> read_int(const std::string& dataset) const;
  Array<uint8_t> read_uint8(const std::string& dataset) const;
  /// Rows [first, first + count) along the first dimension of a uint8 dataset.
  Array<uint8_t> read_uint8_rows(const std::string& dataset, size_t first, size_t count) const;

  void write(const std::string& dataset, const std::vector<size_t>& shape, const float* data,
             int compression = 0);
  void write(const std::string& dataset, const std::vector<size_t>& shape, const double* data,
             int compression = 0);
  void write(const std::string& dataset, const std::vector<size_t>& shape, const int32_t* data,
             int compression = 0);
  void write(const std::string& dataset, const std::vector<size_t>& shape, const uint8_t* data,
             int compression = 0);
  void write(const std::string& dataset, const std::vector<size_t>& shape,
             const std::vector<std::string>& strings);
  std::vector<std::string> read_strings(const std::string& dataset) const;

  // Attributes on an object ("/" for the file).
  void set_attr(const std::string& object, const std::string& name, const std::string& value);
  void set_attr(const std::string& object, const std::string& name, double value);
  void set_attr(const std::string& object, const std::string& name, int64_t value);
  void set_attr(const std::string& object, const std::string& name, const std::vector<int64_t>& v);
  bool has_attr(const std::string& object, const std::string& name) const;
  std::string attr_string(const std::string& object, const std::string& name) const;
  double attr_double(const std::string& object, const std::string& name) const;
  int64_t attr_int(const std::string& object, const std::string& name) const;
  std::vector<int64_t> attr_ints(const std::string& object, const std::string& name) const;

  /// Creates the groups on the way to `object` (like mkdir -p).
  void make_groups(const std::string& object);

private:
  std::string m_path;
  int64_t m_id = -1;
};

/// Called first in main, before any other HDF5 call: HDF5's own clean-up at exit closes every
/// file still open, and after a write that failed (a full disk) its close of that file crashes
/// (a segfault inside H5F__close_cb). dmis closes its files itself, with the status checked, so
/// the library's exit hook is switched off.
void prepare_library();

/// Called once the runtime (MPI) is up, which installs its own handlers: from then on, a damaged
/// file that crashes the HDF5 library inside a read (SIGSEGV, SIGBUS, SIGFPE) or keeps it busy
/// past a limit (20 s + 1 s per 10 MB of the file: a loop on damaged metadata) ends the
/// command with exit 2 and "<who>: error: HDF5 file '<path>': ..." instead of a signal or a
/// hang. Outside reads, signals keep their previous handling.
void guard_reads(const std::string& who);

/// The digest of a whole file in its user block (io/file_digest.hpp); declared here so that
/// write_atomic needs no other header.
void sign_file(const std::string& path);

enum class Digest { None, Whole };

/// Writes an HDF5 file atomically: fill(File&) writes into "<path>.tmp", which is closed with
/// its status checked (and, with Digest::Whole, given the digest of its bytes) and only then
/// renamed to path; on any failure (a full disk included) the temporary file is removed and
/// path is left as it was.
template <class Fill>
void write_atomic(const std::string& path, Fill&& fill, Digest digest = Digest::None) {
  io::AtomicFile out(path);
  File f(out.tmp(), digest == Digest::Whole ? File::Mode::CreateSigned : File::Mode::Create);
  fill(f);
  f.close();
  if (digest == Digest::Whole) sign_file(out.tmp());
  out.commit();
}

}  // namespace dmis::h5

#include "io/h5.hpp"

#include "dmis_config.hpp"
#include "core/io_error.hpp"
#include "io/file_digest.hpp"

#if DMIS_ENABLE_HDF5
#include <hdf5.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <limits>
#include <new>
#include <sstream>
#include <thread>
#include <type_traits>
#include <unistd.h>

namespace dmis::h5 {

namespace {

[[noreturn]] void fail(const std::string& path, const std::string& object, const std::string& what) {
  throw InputError(cat("HDF5 file '", path, "'", object.empty() ? "" : ", object '" + object + "'",
                       ": ", what));
}

void silence_hdf5_errors() {
  static bool done = false;
  if (!done) {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // errors are reported by our exceptions
    done = true;
  }
}

// Closes an HDF5 handle when it goes out of scope.
struct Handle {
  hid_t id;
  herr_t (*close)(hid_t);
  Handle(hid_t i, herr_t (*c)(hid_t)) : id(i), close(c) {}
  ~Handle() {
    if (id >= 0) close(id);
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  operator hid_t() const { return id; }
};

// --- the read guard (guard_reads): which file is being read, since when, for how long at most.
// Plain buffers and atomics only: the signal handler and the watchdog read them.
char g_who[256] = "dmis";
char g_reading_path[4096];
std::atomic<bool> g_reading{false};
std::atomic<bool> g_guarded{false};
std::atomic<double> g_read_deadline{0};
thread_local int t_read_depth = 0;
struct sigaction g_previous[32];

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void say_and_exit(const char* what) {
  // async-signal-safe: write(2) of fixed buffers, then _exit
  auto put = [](const char* t) {
    if (::write(2, t, std::strlen(t)) < 0) {}
  };
  put(g_who);
  put(": error: HDF5 file '");
  put(g_reading_path);
  put("': ");
  put(what);
  put(": the file is damaged (or not a file this command reads)\n");
  ::_exit(2);
}

void on_fatal_signal(int sig) {
  if (g_reading.load()) {
    say_and_exit(sig == SIGSEGV ? "reading it crashed the HDF5 library (SIGSEGV)"
                 : sig == SIGBUS ? "reading it crashed the HDF5 library (SIGBUS)"
                 : sig == SIGFPE ? "reading it crashed the HDF5 library (SIGFPE)"
                                 : "reading it crashed the HDF5 library");
  }
  // not in a read: the previous handling (the MPI library's report, or the default)
  sigaction(sig, &g_previous[sig], nullptr);
  raise(sig);
}

// Marks the calling scope as a read of `path` (nested scopes count once).
class ReadScope {
public:
  explicit ReadScope(const std::string& path) {
    if (t_read_depth++ > 0 || !g_guarded.load()) return;
    std::snprintf(g_reading_path, sizeof g_reading_path, "%s", path.c_str());
    std::error_code ec;
    const auto bytes = std::filesystem::file_size(path, ec);
    g_read_deadline.store(now_seconds() + 20.0 + (ec ? 0.0 : static_cast<double>(bytes) / 10e6));
    g_reading.store(true);
  }
  ~ReadScope() {
    if (--t_read_depth == 0) g_reading.store(false);
  }
  ReadScope(const ReadScope&) = delete;
  ReadScope& operator=(const ReadScope&) = delete;
};

std::string parent_of(const std::string& object) {
  const auto at = object.rfind('/');
  if (at == std::string::npos || at == 0) return "/";
  return object.substr(0, at);
}

template <class T>
hid_t native_type();
template <>
hid_t native_type<float>() {
  return H5T_NATIVE_FLOAT;
}
template <>
hid_t native_type<double>() {
  return H5T_NATIVE_DOUBLE;
}
template <>
hid_t native_type<int32_t>() {
  return H5T_NATIVE_INT32;
}
template <>
hid_t native_type<uint8_t>() {
  return H5T_NATIVE_UINT8;
}

// What the file stores must convert to T without changing the values: HDF5 would read floats
// into integers truncated (3.5 -> 3) and wider integers into uint8 clipped (300 -> 255).
template <class T>
void check_stored_type(hid_t ds, const std::string& path, const std::string& name) {
  Handle type(H5Dget_type(ds), H5Tclose);
  if (type < 0) fail(path, name, "cannot read its type");
  const H5T_class_t cls = H5Tget_class(type);
  const size_t size = H5Tget_size(type);
  const bool is_signed = cls == H5T_INTEGER && H5Tget_sign(type) == H5T_SGN_2;
  const std::string stored =
      cls == H5T_INTEGER ? cat(is_signed ? "int" : "uint", 8 * size)
      : cls == H5T_FLOAT ? cat("float", 8 * size)
      : cls == H5T_STRING ? std::string("strings")
                          : std::string("a non-numeric type");
  const char* want = std::is_same_v<T, uint8_t> ? "uint8" : std::is_same_v<T, int32_t> ? "integers"
                                                                                       : "numbers";
  if (cls != H5T_INTEGER && cls != H5T_FLOAT) fail(path, name, cat("stores ", stored, ", expected ", want));
  if (std::is_integral_v<T> && cls == H5T_FLOAT)
    fail(path, name, cat("stores ", stored, ", expected ", want, " (floats would be truncated)"));
  if (std::is_same_v<T, uint8_t> && (size > 1 || is_signed))
    fail(path, name, cat("stores ", stored, ", expected uint8 (values outside 0..255 would be clipped)"));
}

// The values of a dataset of these dims, allocated: the count bounded by this machine's memory,
// so that a file that declares a huge shape fails with its name, not with std::bad_alloc.
template <class T>
void allocate(std::vector<T>& v, const std::vector<hsize_t>& dims, const std::string& path,
              const std::string& name) {
  size_t n = 1;
  bool overflow = false;
  for (hsize_t d : dims) {
    if (d != 0 && n > std::numeric_limits<size_t>::max() / sizeof(T) / d) overflow = true;
    n *= static_cast<size_t>(d);
  }
  const double bytes = static_cast<double>(n) * sizeof(T);
  const double memory = static_cast<double>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGESIZE);
  std::string shape;
  for (size_t i = 0; i < dims.size(); ++i) shape += cat(i ? ", " : "", dims[i]);
  if (overflow || (memory > 0 && bytes > memory))
    fail(path, name, cat("declares shape (", shape, "): ", overflow ? std::string("more") : cat(bytes / 1e9),
                         " GB, more than this machine's memory (", memory / 1e9, " GB)"));
  try {
    v.resize(n);
  } catch (const std::bad_alloc&) {
    fail(path, name, cat("declares shape (", shape, "): ", bytes / 1e9, " GB, which cannot be allocated"));
  }
}

template <class T>
Array<T> read_dataset(hid_t file, const std::string& path, const std::string& name) {
  const ReadScope guard(path);
  if (H5Lexists(file, name.c_str(), H5P_DEFAULT) <= 0) fail(path, name, "no such dataset");
  Handle ds(H5Dopen2(file, name.c_str(), H5P_DEFAULT), H5Dclose);
  if (ds < 0) fail(path, name, "cannot open as a dataset");
  Handle space(H5Dget_space(ds), H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(space);
  if (rank < 0) fail(path, name, "cannot read its shape");
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  if (H5Sget_simple_extent_dims(space, dims.data(), nullptr) < 0) fail(path, name, "cannot read its shape");
  check_stored_type<T>(ds, path, name);
  Array<T> out;
  for (hsize_t d : dims) out.shape.push_back(static_cast<size_t>(d));
  allocate(out.data, dims, path, name);
  const size_t n = out.data.size();
  if (n > 0 && H5Dread(ds, native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data.data()) < 0)
    fail(path, name, "cannot read its values as the expected numeric type");
  return out;
}

template <class T>
void write_dataset(hid_t file, const std::string& path, const std::string& name,
                   const std::vector<size_t>& shape, const T* data, int compression,
                   File& self) {
  self.make_groups(parent_of(name));
  if (H5Lexists(file, name.c_str(), H5P_DEFAULT) > 0) H5Ldelete(file, name.c_str(), H5P_DEFAULT);
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  size_t n = 1;
  for (size_t d : shape) n *= d;
  if (compression > 0 && n > 0 && !dims.empty()) {
    std::vector<hsize_t> chunk(dims);
    // chunks of whole trailing rows, about 1 MiB
    size_t bytes = sizeof(T);
    for (size_t i = 1; i < chunk.size(); ++i) bytes *= chunk[i];
    chunk[0] = std::max<hsize_t>(1, std::min<hsize_t>(dims[0], (1u << 20) / std::max<size_t>(bytes, 1)));
    H5Pset_chunk(dcpl, static_cast<int>(chunk.size()), chunk.data());
    H5Pset_deflate(dcpl, static_cast<unsigned>(compression));
  }
  Handle ds(H5Dcreate2(file, name.c_str(), native_type<T>(), space, H5P_DEFAULT, dcpl, H5P_DEFAULT),
            H5Dclose);
  if (ds < 0) fail(path, name, cat("cannot create dataset: ", write_failure_cause(path)));
  if (n > 0 && H5Dwrite(ds, native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
    fail(path, name, cat("cannot write dataset: ", write_failure_cause(path)));
}

hid_t open_object(hid_t file, const std::string& path, const std::string& object) {
  const hid_t o = H5Oopen(file, object.c_str(), H5P_DEFAULT);
  if (o < 0) fail(path, object, "no such object");
  return o;
}

}  // namespace

File::File(const std::string& path, Mode mode) : m_path(path) {
  silence_hdf5_errors();
  if (mode == Mode::Read) {
    const ReadScope guard(path);
    if (H5Fis_hdf5(path.c_str()) <= 0) {
      FILE* f = std::fopen(path.c_str(), "rb");
      if (!f) fail(path, "", "cannot open for reading (missing or not readable)");
      std::fclose(f);
      fail(path, "", "is not an HDF5 file");
    }
    m_id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    if (m_id < 0) {
      // the signature is there, the rest is not: cut short or damaged
      std::error_code ec;
      const auto bytes = std::filesystem::file_size(path, ec);
      fail(path, "", cat("cannot be opened: an HDF5 file whose structure is damaged or cut short (",
                         ec ? std::string("size unknown") : cat(bytes, " bytes"),
                         "; an interrupted copy or write?)"));
    }
  } else {
    Handle fcpl(H5Pcreate(H5P_FILE_CREATE), H5Pclose);
    if (mode == Mode::CreateSigned) H5Pset_userblock(fcpl, io::kDigestBlock);
    errno = 0;
    m_id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
    if (m_id < 0) fail(path, "", cat("cannot create: ", write_failure_cause(path)));
  }
}

void prepare_library() { H5dont_atexit(); }

void sign_file(const std::string& path) { io::write_file_digest(path); }

void guard_reads(const std::string& who) {
  std::snprintf(g_who, sizeof g_who, "%s", who.c_str());
  if (g_guarded.exchange(true)) return;
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE}) {
    struct sigaction sa {};
    sa.sa_handler = on_fatal_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, &g_previous[sig]);
  }
  std::thread([] {
    for (;;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
      if (g_reading.load() && now_seconds() > g_read_deadline.load())
        say_and_exit("reading it did not finish in time (the HDF5 library loops on its metadata)");
    }
  }).detach();
}

void File::close() {
  if (m_id < 0) return;
  errno = 0;
  const herr_t flushed = H5Fflush(m_id, H5F_SCOPE_LOCAL);
  const herr_t closed = H5Fclose(m_id);
  m_id = -1;
  if (flushed < 0 || closed < 0) fail(m_path, "", cat("cannot finish writing: ", write_failure_cause(m_path)));
}

File::~File() {
  if (m_id >= 0) H5Fclose(m_id);
}

File::File(File&& other) noexcept : m_path(std::move(other.m_path)), m_id(other.m_id) {
  other.m_id = -1;
}

bool File::exists(const std::string& object) const {
  const ReadScope guard(m_path);
  if (object == "/") return true;
  // every link on the way must exist
  std::string partial;
  std::stringstream ss(object);
  std::string piece;
  while (std::getline(ss, piece, '/')) {
    if (piece.empty()) continue;
    partial += "/" + piece;
    if (H5Lexists(m_id, partial.c_str(), H5P_DEFAULT) <= 0) return false;
  }
  return true;
}

std::vector<std::string> File::list(const std::string& group) const {
  const ReadScope guard(m_path);
  if (!exists(group)) fail(m_path, group, "no such group");
  Handle g(H5Gopen2(m_id, group.c_str(), H5P_DEFAULT), H5Gclose);
  if (g < 0) fail(m_path, group, "not a group");
  H5G_info_t info;
  if (H5Gget_info(g, &info) < 0) fail(m_path, group, "cannot read the group's members");
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t len = H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0,
                                           H5P_DEFAULT);
    if (len < 0 || len > (1 << 16)) fail(m_path, group, cat("member ", i, " has no readable name"));
    std::string name(static_cast<size_t>(len), '\0');
    if (H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size() + 1,
                           H5P_DEFAULT) < 0)
      fail(m_path, group, cat("cannot read the name of member ", i));
    names.push_back(name);
  }
  return names;
}

std::vector<size_t> File::shape(const std::string& dataset) const {
  const ReadScope guard(m_path);
  if (!exists(dataset)) fail(m_path, dataset, "no such dataset");
  Handle ds(H5Dopen2(m_id, dataset.c_str(), H5P_DEFAULT), H5Dclose);
  if (ds < 0) fail(m_path, dataset, "not a dataset");
  Handle space(H5Dget_space(ds), H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(space);
  std::vector<hsize_t> dims(static_cast<size_t>(std::max(rank, 0)));
  if (H5Sget_simple_extent_dims(space, dims.data(), nullptr) < 0) fail(m_path, dataset, "cannot read its shape");
  return std::vector<size_t>(dims.begin(), dims.end());
}

Array<float> File::read_float(const std::string& d) const { return read_dataset<float>(m_id, m_path, d); }
Array<double> File::read_double(const std::string& d) const {
  return read_dataset<double>(m_id, m_path, d);
}
Array<int32_t> File::read_int(const std::string& d) const {
  return read_dataset<int32_t>(m_id, m_path, d);
}
Array<uint8_t> File::read_uint8(const std::string& d) const {
  return read_dataset<uint8_t>(m_id, m_path, d);
}

Array<uint8_t> File::read_uint8_rows(const std::string& name, size_t first, size_t count) const {
  const ReadScope guard(m_path);
  const auto full = shape(name);
  if (full.empty()) fail(m_path, name, "is a scalar, expected an array");
  if (first + count > full[0])
    fail(m_path, name, cat("rows [", first, ", ", first + count, ") requested, it has ", full[0]));
  Handle ds(H5Dopen2(m_id, name.c_str(), H5P_DEFAULT), H5Dclose);
  check_stored_type<uint8_t>(ds, m_path, name);
  Handle space(H5Dget_space(ds), H5Sclose);
  std::vector<hsize_t> start(full.size(), 0), cnt(full.begin(), full.end());
  start[0] = first;
  cnt[0] = count;
  if (H5Sselect_hyperslab(space, H5S_SELECT_SET, start.data(), nullptr, cnt.data(), nullptr) < 0)
    fail(m_path, name, "cannot select its rows");
  Handle mem(H5Screate_simple(static_cast<int>(cnt.size()), cnt.data(), nullptr), H5Sclose);
  Array<uint8_t> out;
  out.shape.assign(cnt.begin(), cnt.end());
  allocate(out.data, cnt, m_path, name);
  const size_t n = out.data.size();
  if (n > 0 && H5Dread(ds, H5T_NATIVE_UINT8, mem, space, H5P_DEFAULT, out.data.data()) < 0)
    fail(m_path, name, "cannot read rows as uint8");
  return out;
}

void File::write(const std::string& d, const std::vector<size_t>& s, const float* p, int c) {
  write_dataset(m_id, m_path, d, s, p, c, *this);
}
void File::write(const std::string& d, const std::vector<size_t>& s, const double* p, int c) {
  write_dataset(m_id, m_path, d, s, p, c, *this);
}
void File::write(const std::string& d, const std::vector<size_t>& s, const int32_t* p, int c) {
  write_dataset(m_id, m_path, d, s, p, c, *this);
}
void File::write(const std::string& d, const std::vector<size_t>& s, const uint8_t* p, int c) {
  write_dataset(m_id, m_path, d, s, p, c, *this);
}

void File::write(const std::string& name, const std::vector<size_t>& shape,
                 const std::vector<std::string>& strings) {
  make_groups(parent_of(name));
  if (H5Lexists(m_id, name.c_str(), H5P_DEFAULT) > 0) H5Ldelete(m_id, name.c_str(), H5P_DEFAULT);
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type, H5T_VARIABLE);
  H5Tset_cset(type, H5T_CSET_UTF8);
  Handle ds(H5Dcreate2(m_id, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
            H5Dclose);
  if (ds < 0) fail(m_path, name, "cannot create string dataset");
  std::vector<const char*> ptrs;
  for (const auto& s : strings) ptrs.push_back(s.c_str());
  if (!ptrs.empty() && H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()) < 0)
    fail(m_path, name, "cannot write string dataset");
}

std::vector<std::string> File::read_strings(const std::string& name) const {
  const ReadScope guard(m_path);
  const auto s = shape(name);
  size_t n = 1;
  for (auto d : s) n *= d;
  Handle ds(H5Dopen2(m_id, name.c_str(), H5P_DEFAULT), H5Dclose);
  Handle ftype(H5Dget_type(ds), H5Tclose);
  if (H5Tget_class(ftype) != H5T_STRING) fail(m_path, name, "is not a string dataset");
  if (H5Tis_variable_str(ftype) <= 0) {
    // fixed length (numpy 'S' arrays from h5py): n strings of w bytes, NULLPAD or NULLTERM;
    // read into w + 1 byte slots so that a string filling all w bytes keeps its last character
    const size_t w = H5Tget_size(ftype) + 1;
    if (w > (1u << 20))  // a length read from the file: bounded before anything is allocated
      fail(m_path, name, cat("declares strings of ", w - 1, " bytes each, expected at most 1 MiB"));
    Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(type, w);
    H5Tset_cset(type, H5Tget_cset(ftype));
    std::vector<char> buf;
    allocate(buf, {static_cast<hsize_t>(n), static_cast<hsize_t>(w)}, m_path, name);
    if (n > 0 && H5Dread(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()) < 0)
      fail(m_path, name, "cannot read as strings");
    std::vector<std::string> out;
    for (size_t i = 0; i < n; ++i) out.emplace_back(buf.data() + i * w);
    return out;
  }
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type, H5T_VARIABLE);
  H5Tset_cset(type, H5Tget_cset(ftype));
  std::vector<char*> ptrs;
  allocate(ptrs, {static_cast<hsize_t>(n)}, m_path, name);
  if (n > 0 && H5Dread(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()) < 0)
    fail(m_path, name, "cannot read as strings");
  std::vector<std::string> out;
  for (char* p : ptrs) out.emplace_back(p ? p : "");
  if (n > 0) {
    Handle space(H5Dget_space(ds), H5Sclose);
    H5Dvlen_reclaim(type, space, H5P_DEFAULT, ptrs.data());
  }
  return out;
}

void File::make_groups(const std::string& object) {
  std::string partial;
  std::stringstream ss(object);
  std::string piece;
  while (std::getline(ss, piece, '/')) {
    if (piece.empty()) continue;
    partial += "/" + piece;
    if (H5Lexists(m_id, partial.c_str(), H5P_DEFAULT) <= 0) {
      Handle g(H5Gcreate2(m_id, partial.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
      if (g < 0) fail(m_path, partial, "cannot create group");
    }
  }
}

namespace {
void write_attr(hid_t file, const std::string& path, const std::string& object,
                const std::string& name, hid_t type, hid_t space, const void* value) {
  Handle o(open_object(file, path, object), H5Oclose);
  if (H5Aexists(o, name.c_str()) > 0) H5Adelete(o, name.c_str());
  Handle a(H5Acreate2(o, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (a < 0 || H5Awrite(a, type, value) < 0)
    fail(path, object, cat("cannot write attribute '", name, "': ", write_failure_cause(path)));
}
hid_t open_attr(hid_t o, const std::string& path, const std::string& object,
                const std::string& name) {
  if (H5Aexists(o, name.c_str()) <= 0) fail(path, object, cat("no attribute '", name, "'"));
  return H5Aopen(o, name.c_str(), H5P_DEFAULT);
}
}  // namespace

void File::set_attr(const std::string& object, const std::string& name, const std::string& value) {
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type, std::max<size_t>(value.size(), 1));
  H5Tset_cset(type, H5T_CSET_UTF8);
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  std::string padded = value.empty() ? std::string(1, '\0') : value;
  write_attr(m_id, m_path, object, name, type, space, padded.data());
}

void File::set_attr(const std::string& object, const std::string& name, double value) {
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  write_attr(m_id, m_path, object, name, H5T_NATIVE_DOUBLE, space, &value);
}

void File::set_attr(const std::string& object, const std::string& name, int64_t value) {
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  write_attr(m_id, m_path, object, name, H5T_NATIVE_INT64, space, &value);
}

void File::set_attr(const std::string& object, const std::string& name,
                    const std::vector<int64_t>& v) {
  const hsize_t n = v.size();
  Handle space(H5Screate_simple(1, &n, nullptr), H5Sclose);
  write_attr(m_id, m_path, object, name, H5T_NATIVE_INT64, space, v.data());
}

bool File::has_attr(const std::string& object, const std::string& name) const {
  const ReadScope guard(m_path);
  if (!exists(object)) return false;
  Handle o(open_object(m_id, m_path, object), H5Oclose);
  return H5Aexists(o, name.c_str()) > 0;
}

std::string File::attr_string(const std::string& object, const std::string& name) const {
  const ReadScope guard(m_path);
  Handle o(open_object(m_id, m_path, object), H5Oclose);
  Handle a(open_attr(o, m_path, object, name), H5Aclose);
  Handle ftype(H5Aget_type(a), H5Tclose);
  if (H5Tget_class(ftype) != H5T_STRING)
    fail(m_path, object, cat("attribute '", name, "' is not a string"));
  if (H5Tis_variable_str(ftype) > 0) {
    Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(type, H5T_VARIABLE);
    H5Tset_cset(type, H5Tget_cset(ftype));
    char* p = nullptr;
    if (H5Aread(a, type, &p) < 0)
      fail(m_path, object, cat("cannot read attribute '", name, "' as a string"));
    std::string s = p ? p : "";
    if (p) H5free_memory(p);
    return s;
  }
  // fixed length: h5py writes bytes as NULLPAD strings that fill every byte, so the memory type
  // gets one byte more than the file type (a NULLTERM type of size n holds only n - 1 characters)
  const size_t n = H5Tget_size(ftype);
  std::string s(n + 1, '\0');
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type, n + 1);
  H5Tset_cset(type, H5Tget_cset(ftype));
  if (H5Aread(a, type, s.data()) < 0)
    fail(m_path, object, cat("cannot read attribute '", name, "' as a string"));
  s.erase(std::find(s.begin(), s.end(), '\0'), s.end());
  return s;
}

double File::attr_double(const std::string& object, const std::string& name) const {
  const ReadScope guard(m_path);
  Handle o(open_object(m_id, m_path, object), H5Oclose);
  Handle a(open_attr(o, m_path, object, name), H5Aclose);
  double v = 0;
  if (H5Aread(a, H5T_NATIVE_DOUBLE, &v) < 0)
    fail(m_path, object, cat("attribute '", name, "' is not a number"));
  return v;
}

int64_t File::attr_int(const std::string& object, const std::string& name) const {
  const ReadScope guard(m_path);
  Handle o(open_object(m_id, m_path, object), H5Oclose);
  Handle a(open_attr(o, m_path, object, name), H5Aclose);
  int64_t v = 0;
  if (H5Aread(a, H5T_NATIVE_INT64, &v) < 0)
    fail(m_path, object, cat("attribute '", name, "' is not an integer"));
  return v;
}

std::vector<int64_t> File::attr_ints(const std::string& object, const std::string& name) const {
  const ReadScope guard(m_path);
  Handle o(open_object(m_id, m_path, object), H5Oclose);
  Handle a(open_attr(o, m_path, object, name), H5Aclose);
  Handle space(H5Aget_space(a), H5Sclose);
  const hssize_t n = H5Sget_simple_extent_npoints(space);
  std::vector<int64_t> v(static_cast<size_t>(std::max<hssize_t>(n, 0)));
  if (n > 0 && H5Aread(a, H5T_NATIVE_INT64, v.data()) < 0)
    fail(m_path, object, cat("attribute '", name, "' is not a list of integers"));
  return v;
}

}  // namespace dmis::h5

#else  // DMIS_ENABLE_HDF5

namespace dmis::h5 {
namespace {
[[noreturn]] void no_hdf5(const std::string& path) {
  throw InputError(cat("cannot use HDF5 file '", path,
                       "': dmis was built without HDF5 (DMIS_ENABLE_HDF5=OFF); rebuild with it"));
}
}  // namespace
File::File(const std::string& path, Mode) : m_path(path) { no_hdf5(path); }
File::~File() = default;
void File::close() {}
void prepare_library() {}
void guard_reads(const std::string&) {}
void sign_file(const std::string& path) { no_hdf5(path); }
File::File(File&& o) noexcept : m_path(std::move(o.m_path)) {}
bool File::exists(const std::string&) const { no_hdf5(m_path); }
std::vector<std::string> File::list(const std::string&) const { no_hdf5(m_path); }
std::vector<size_t> File::shape(const std::string&) const { no_hdf5(m_path); }
Array<float> File::read_float(const std::string&) const { no_hdf5(m_path); }
Array<double> File::read_double(const std::string&) const { no_hdf5(m_path); }
Array<int32_t> File::read_int(const std::string&) const { no_hdf5(m_path); }
Array<uint8_t> File::read_uint8(const std::string&) const { no_hdf5(m_path); }
Array<uint8_t> File::read_uint8_rows(const std::string&, size_t, size_t) const { no_hdf5(m_path); }
void File::write(const std::string&, const std::vector<size_t>&, const float*, int) { no_hdf5(m_path); }
void File::write(const std::string&, const std::vector<size_t>&, const double*, int) { no_hdf5(m_path); }
void File::write(const std::string&, const std::vector<size_t>&, const int32_t*, int) { no_hdf5(m_path); }
void File::write(const std::string&, const std::vector<size_t>&, const uint8_t*, int) { no_hdf5(m_path); }
void File::write(const std::string&, const std::vector<size_t>&, const std::vector<std::string>&) {
  no_hdf5(m_path);
}
std::vector<std::string> File::read_strings(const std::string&) const { no_hdf5(m_path); }
void File::set_attr(const std::string&, const std::string&, const std::string&) { no_hdf5(m_path); }
void File::set_attr(const std::string&, const std::string&, double) { no_hdf5(m_path); }
void File::set_attr(const std::string&, const std::string&, int64_t) { no_hdf5(m_path); }
void File::set_attr(const std::string&, const std::string&, const std::vector<int64_t>&) {
  no_hdf5(m_path);
}
bool File::has_attr(const std::string&, const std::string&) const { no_hdf5(m_path); }
std::string File::attr_string(const std::string&, const std::string&) const { no_hdf5(m_path); }
double File::attr_double(const std::string&, const std::string&) const { no_hdf5(m_path); }
int64_t File::attr_int(const std::string&, const std::string&) const { no_hdf5(m_path); }
std::vector<int64_t> File::attr_ints(const std::string&, const std::string&) const {
  no_hdf5(m_path);
}
void File::make_groups(const std::string&) { no_hdf5(m_path); }
}  // namespace dmis::h5

#endif

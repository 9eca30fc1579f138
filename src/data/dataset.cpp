#include "data/dataset.hpp"

#include <zlib.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.hpp"
#include "io/h5.hpp"

namespace dmis::data {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void fail(const std::string& path, const std::string& object,
                       const std::string& what) {
  throw InputError(cat("dataset '", path, "'", object.empty() ? "" : ", " + object, ": ", what));
}

std::string shape_str(const std::vector<size_t>& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i)
    out += (i ? ", " : "") + std::to_string(s[i]);
  return out + (s.size() == 1 ? ",)" : ")");
}

int to_int_extent(const std::string& path, const std::string& object, size_t v) {
  if (v > static_cast<size_t>(INT_MAX))
    fail(path, object, cat("extent ", v, " is too large (at most ", INT_MAX, ")"));
  return static_cast<int>(v);
}

// Checks that `object` has shape `expected`; `what` describes the expected dataset.
void expect_shape(const h5::File& f, const std::string& object, const std::vector<size_t>& expected,
                  const std::string& what) {
  const auto s = f.shape(object);
  if (s != expected)
    fail(f.path(), object,
         cat("expected shape ", shape_str(expected), " (", what, "), found ", shape_str(s)));
}

template <class T> void truncate_rows(std::vector<T>& v, size_t rows, size_t row_size) {
  if (v.size() > rows * row_size)
    v.resize(rows * row_size);
}

Split read_split(const h5::File& f, const std::string& split, int K, size_t limit) {
  const std::string& path = f.path();
  const std::string g = "/" + split;
  const std::string img = g + "/images", obs = g + "/observations", msk = g + "/masks";
  const bool has_images = f.exists(img), has_obs = f.exists(obs);
  if (has_images && has_obs)
    fail(path, g,
         "holds both images and observations: expected clean images or a corrupted split "
         "(observations + masks), not both (see docs/datasets.md)");
  if (!has_images && !has_obs)
    fail(path, img,
         "missing: expected a dataset (N, C, H, W) of uint8 pixels, or observations + masks of a "
         "corrupted split (see docs/datasets.md)");
  const std::string& data = has_images ? img : obs;
  const auto s = f.shape(data);
  if (s.size() != 4)
    fail(path, data,
         cat("expected rank 4 (N, C, H, W), found rank ", s.size(), " ", shape_str(s),
             s.size() == 3 ? " (add the channel axis: images[:, None])" : ""));
  Split out;
  out.name = split;
  const size_t N = s[0];
  if (N == 0)
    fail(path, data, "expected at least one image, found N = 0");
  for (int d = 1; d < 4; ++d)
    if (s[d] == 0)
      fail(path, data, cat("expected C, H, W >= 1, found shape ", shape_str(s)));
  const size_t n = limit > 0 ? std::min(limit, N) : N;
  out.N = to_int_extent(path, data, n);
  out.C = to_int_extent(path, data, s[1]);
  out.H = to_int_extent(path, data, s[2]);
  out.W = to_int_extent(path, data, s[3]);
  if (has_images) {
    out.images = n < N ? f.read_uint8_rows(img, 0, n).data : f.read_uint8(img).data;
  } else {
    if (!f.exists(msk))
      fail(path, msk,
           cat("missing: a corrupted split needs masks (N, 1, H, W) = (", N, ", 1, ", s[2], ", ",
               s[3], ") uint8 beside ", obs));
    expect_shape(f, msk, {N, 1, s[2], s[3]}, "uint8, 1 = pixel observed, one mask per observation");
    out.observations = f.read_float(obs).data;
    truncate_rows(out.observations, n, out.C * size_t(out.H) * out.W);
    // the [-1, 1] scale of the images plus observation noise: a value far outside it (1e30, or
    // 0..255 pixels stored unscaled) would surface much later as a NaN loss blamed on train.lr
    for (size_t i = 0; i < out.observations.size(); ++i) {
      const float v = out.observations[i];
      if (!std::isfinite(v) || std::fabs(v) > 16.f)
        fail(path, obs,
             cat("value ", v, " at index ", i, ": expected finite values in the [-1, 1] scale of the images ",
                 "(plus observation noise; at most 16 in magnitude)",
                 std::fabs(v) <= 255.f && std::isfinite(v) ? "; pixels 0..255 become x / 127.5 - 1" : ""));
    }
    out.masks = n < N ? f.read_uint8_rows(msk, 0, n).data : f.read_uint8(msk).data;
    out.corruption = f.has_attr(g, "corruption") ? f.attr_string(g, "corruption") : "unknown";
    if (out.corruption.empty())
      out.corruption = "unknown";
    out.corruption_seed =
        f.has_attr(g, "corruption_seed") ? static_cast<uint64_t>(f.attr_int(g, "corruption_seed")) : 0;
  }

  const std::string lab = g + "/labels";
  if (!f.exists(lab))
    fail(path, lab, cat("missing: expected (N) = (", N, ",) int32 labels, one per image"));
  expect_shape(f, lab, {N}, "int32, one label per image of " + img);
  out.labels = f.read_int(lab).data;
  truncate_rows(out.labels, n, 1);

  const std::string cand = g + "/candidates";
  if (f.exists(cand)) {
    expect_shape(f, cand, {N, static_cast<size_t>(K)},
                 cat("uint8, one row of K = ", K, " candidate flags per image of ", img));
    out.candidates = n < N ? f.read_uint8_rows(cand, 0, n).data : f.read_uint8(cand).data;
  }
  const std::string unl = g + "/unlabeled";
  if (f.exists(unl)) {
    expect_shape(f, unl, {N}, "uint8, one flag per image of " + img);
    out.unlabeled = f.read_uint8(unl).data;
    truncate_rows(out.unlabeled, n, 1);
  }
  const std::string clean = g + "/clean_labels";
  if (f.exists(clean)) {
    expect_shape(f, clean, {N}, "int32, one ground-truth label per image of " + img);
    out.clean_labels = f.read_int(clean).data;
    truncate_rows(out.clean_labels, n, 1);
  }
  return out;
}

void validate_split(const Split& sp, int K, const std::string& path, const std::string& g) {
  if (sp.N <= 0)
    fail(path, g + "/images", cat("expected at least one image, found N = ", sp.N));
  if (sp.C <= 0 || sp.H <= 0 || sp.W <= 0)
    fail(path, g + "/images",
         cat("expected C, H, W >= 1, found (", sp.N, ", ", sp.C, ", ", sp.H, ", ", sp.W, ")"));
  const size_t N = static_cast<size_t>(sp.N);
  const size_t npix = N * sp.C * sp.H * sp.W;
  if (sp.corrupted()) {
    if (!sp.images.empty())
      fail(path, g + "/images", "a corrupted split holds observations, not images");
    if (sp.observations.size() != npix)
      fail(path, g + "/observations",
           cat("expected ", npix, " values for (", sp.N, ", ", sp.C, ", ", sp.H, ", ", sp.W,
               "), found ", sp.observations.size()));
    if (sp.masks.size() != N * sp.H * sp.W)
      fail(path, g + "/masks",
           cat("expected ", N * sp.H * sp.W, " flags for (", sp.N, ", 1, ", sp.H, ", ", sp.W,
               "), found ", sp.masks.size()));
    for (size_t i = 0; i < sp.masks.size(); ++i)
      if (sp.masks[i] > 1)
        fail(path, g + "/masks", cat("expected flags 0 or 1, found ", int(sp.masks[i]),
                                     " at flat index ", i));
    for (size_t i = 0; i < sp.observations.size(); ++i)
      if (!std::isfinite(sp.observations[i]))
        fail(path, g + "/observations",
             cat("expected finite values, found ", sp.observations[i], " at flat index ", i));
    if (!sp.clean_images.empty() && sp.clean_images.size() != npix)
      fail(path, g + "/clean_images",
           cat("expected ", npix, " pixels, found ", sp.clean_images.size()));
  } else if (sp.images.size() != npix) {
    fail(path, g + "/images",
         cat("expected ", npix, " pixels for (", sp.N, ", ", sp.C, ", ", sp.H, ", ", sp.W,
             "), found ", sp.images.size()));
  }
  if (sp.labels.size() != N)
    fail(path, g + "/labels",
         cat("expected ", N, " labels (one per image), found ", sp.labels.size()));
  if (!sp.candidates.empty()) {
    if (sp.candidates.size() != N * K)
      fail(path, g + "/candidates",
           cat("expected (N, K) = (", N, ", ", K, ") = ", N * K, " flags, found ",
               sp.candidates.size()));
    for (size_t i = 0; i < N; ++i) {
      int count = 0;
      for (int k = 0; k < K; ++k) {
        const uint8_t v = sp.candidates[i * K + k];
        if (v > 1)
          fail(path, g + "/candidates",
               cat("expected flags 0 or 1, found ", int(v), " at [", i, ", ", k, "]"));
        count += v;
      }
      if (count == 0)
        fail(path, g + "/candidates",
             cat("row ", i, " is empty: every image needs a non-empty candidate set"));
    }
  }
  if (!sp.unlabeled.empty()) {
    if (sp.unlabeled.size() != N)
      fail(path, g + "/unlabeled",
           cat("expected ", N, " flags (one per image), found ", sp.unlabeled.size()));
    for (size_t i = 0; i < N; ++i)
      if (sp.unlabeled[i] > 1)
        fail(path, g + "/unlabeled",
             cat("expected flags 0 or 1, found ", int(sp.unlabeled[i]), " at index ", i));
  }
  for (size_t i = 0; i < N; ++i) {
    const int32_t y = sp.labels[i];
    if (y >= 0 && y < K)
      continue;
    const bool may_be_missing =
        y == -1 && ((!sp.unlabeled.empty() && sp.unlabeled[i]) || !sp.candidates.empty());
    if (may_be_missing)
      continue;
    if (y == -1)
      fail(path, g + "/labels",
           cat("label -1 (none) at index ", i, ", but ", g, "/unlabeled[", i,
               "] is not 1 and there is no ", g, "/candidates: expected a label in [0, ", K, ")"));
    fail(path, g + "/labels",
         cat("label ", y, " at index ", i, " is outside [0, ", K, ") (K = ", K, " classes)"));
  }
  if (!sp.clean_labels.empty()) {
    if (sp.clean_labels.size() != N)
      fail(path, g + "/clean_labels",
           cat("expected ", N, " labels (one per image), found ", sp.clean_labels.size()));
    for (size_t i = 0; i < N; ++i)
      if (sp.clean_labels[i] < 0 || sp.clean_labels[i] >= K)
        fail(path, g + "/clean_labels",
             cat("label ", sp.clean_labels[i], " at index ", i, " is outside [0, ", K, ")"));
  }
}

void write_split(h5::File& f, const Split& sp, int K, const std::string& g) {
  const size_t N = static_cast<size_t>(sp.N);
  if (sp.corrupted()) {
    f.write(g + "/observations", {N, size_t(sp.C), size_t(sp.H), size_t(sp.W)},
            sp.observations.data(), 4);
    f.write(g + "/masks", {N, 1, size_t(sp.H), size_t(sp.W)}, sp.masks.data(), 4);
    if (!sp.clean_images.empty())
      f.write(g + "/clean_images", {N, size_t(sp.C), size_t(sp.H), size_t(sp.W)},
              sp.clean_images.data(), 4);
    f.set_attr(g, "corruption", sp.corruption);
    f.set_attr(g, "corruption_seed", static_cast<int64_t>(sp.corruption_seed));
  } else {
    f.write(g + "/images", {N, size_t(sp.C), size_t(sp.H), size_t(sp.W)}, sp.images.data(), 4);
  }
  f.write(g + "/labels", {N}, sp.labels.data());
  if (!sp.candidates.empty())
    f.write(g + "/candidates", {N, size_t(K)}, sp.candidates.data(), 4);
  if (!sp.unlabeled.empty())
    f.write(g + "/unlabeled", {N}, sp.unlabeled.data());
  if (!sp.clean_labels.empty())
    f.write(g + "/clean_labels", {N}, sp.clean_labels.data());
}

// ---- importers ---------------------------------------------------------------------------

const std::vector<std::string>& fashion_mnist_names() {
  static const std::vector<std::string> n = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                             "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                             "Bag",         "Ankle boot"};
  return n;
}

const std::vector<std::string>& cifar10_names() {
  static const std::vector<std::string> n = {"airplane", "automobile", "bird",  "cat",  "deer",
                                             "dog",      "frog",       "horse", "ship", "truck"};
  return n;
}

// A gzip (or plain) file read through zlib, closed on scope exit.
class GzReader {
public:
  explicit GzReader(const std::string& path) : m_path(path), m_f(gzopen(path.c_str(), "rb")) {
    if (!m_f)
      throw InputError(cat("cannot open '", path, "' for reading"));
  }
  ~GzReader() {
    if (m_f)
      gzclose(m_f);
  }
  GzReader(const GzReader&) = delete;
  GzReader& operator=(const GzReader&) = delete;

  /// Reads up to n bytes; returns how many were read.
  size_t read(uint8_t* dst, size_t n) {
    size_t done = 0;
    while (done < n) {
      const unsigned chunk = static_cast<unsigned>(std::min<size_t>(n - done, 1u << 30));
      const int r = gzread(m_f, dst + done, chunk);
      if (r < 0) {
        int err = 0;
        const char* msg = gzerror(m_f, &err);
        throw InputError(cat("'", m_path, "': cannot decompress (", msg ? msg : "zlib error",
                             "): is it a damaged download?"));
      }
      if (r == 0)
        break;
      done += static_cast<size_t>(r);
    }
    return done;
  }
  void read_exact(uint8_t* dst, size_t n, const std::string& what) {
    const size_t got = read(dst, n);
    if (got != n)
      throw InputError(
          cat("'", m_path, "': truncated: expected ", n, " bytes of ", what, ", found ", got));
  }
  uint32_t read_be32(const std::string& what) {
    uint8_t b[4];
    read_exact(b, 4, what);
    return (uint32_t(b[0]) << 24) | (uint32_t(b[1]) << 16) | (uint32_t(b[2]) << 8) | b[3];
  }
  bool at_end() {
    uint8_t b;
    return read(&b, 1) == 0;
  }

private:
  std::string m_path;
  gzFile m_f;
};

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

// dir/base.gz, else dir/base.
std::string find_idx(const std::string& dir, const std::string& base) {
  const fs::path gz = fs::path(dir) / (base + ".gz"), plain = fs::path(dir) / base;
  if (fs::is_regular_file(gz))
    return gz.string();
  if (fs::is_regular_file(plain))
    return plain.string();
  throw InputError(cat("Fashion-MNIST: neither '", gz.string(), "' nor '", plain.string(),
                       "' exists (Debian: apt install dataset-fashion-mnist, then --src ",
                       kDebianFashionMnistDir, "; or download the four files from ",
                       "https://github.com/zalandoresearch/fashion-mnist)"));
}

struct IdxImages {
  int n = 0, rows = 0, cols = 0;
  std::vector<uint8_t> pixels;
};

IdxImages read_idx_images(const std::string& path) {
  GzReader in(path);
  const uint32_t magic = in.read_be32("header");
  if (magic != 0x00000803u)
    throw InputError(cat("'", path, "': magic number ", hex32(magic),
                         ", expected 0x00000803 (IDX images: unsigned bytes, 3 dimensions)"));
  const uint32_t n = in.read_be32("header"), rows = in.read_be32("header"),
                 cols = in.read_be32("header");
  if (n == 0 || n > 100000000u || rows == 0 || rows > 4096 || cols == 0 || cols > 4096)
    throw InputError(cat("'", path, "': header says ", n, " images of ", rows, "x", cols,
                         ", expected 1 to 1e8 images of at most 4096x4096"));
  IdxImages out;
  out.n = static_cast<int>(n);
  out.rows = static_cast<int>(rows);
  out.cols = static_cast<int>(cols);
  out.pixels.resize(size_t(n) * rows * cols);
  in.read_exact(out.pixels.data(), out.pixels.size(),
                cat("pixels (", n, " images of ", rows, "x", cols, ")"));
  if (!in.at_end())
    throw InputError(cat("'", path, "': trailing data after ", n, " images of ", rows, "x", cols));
  return out;
}

std::vector<int32_t> read_idx_labels(const std::string& path, int K) {
  GzReader in(path);
  const uint32_t magic = in.read_be32("header");
  if (magic != 0x00000801u)
    throw InputError(cat("'", path, "': magic number ", hex32(magic),
                         ", expected 0x00000801 (IDX labels: unsigned bytes, 1 dimension)"));
  const uint32_t n = in.read_be32("header");
  if (n == 0 || n > 100000000u)
    throw InputError(cat("'", path, "': header says ", n, " labels, expected 1 to 1e8"));
  std::vector<uint8_t> raw(n);
  in.read_exact(raw.data(), n, cat("labels (", n, ")"));
  if (!in.at_end())
    throw InputError(cat("'", path, "': trailing data after ", n, " labels"));
  std::vector<int32_t> out(n);
  for (uint32_t i = 0; i < n; ++i) {
    if (raw[i] >= K)
      throw InputError(
          cat("'", path, "': label ", int(raw[i]), " at index ", i, " is outside [0, ", K, ")"));
    out[i] = raw[i];
  }
  return out;
}

Split idx_split(const std::string& dir, const std::string& prefix, const std::string& name) {
  const std::string ip = find_idx(dir, prefix + "-images-idx3-ubyte");
  const std::string lp = find_idx(dir, prefix + "-labels-idx1-ubyte");
  IdxImages im = read_idx_images(ip);
  std::vector<int32_t> labels = read_idx_labels(lp, 10);
  if (labels.size() != static_cast<size_t>(im.n))
    throw InputError(cat("Fashion-MNIST: '", ip, "' holds ", im.n, " images but '", lp, "' holds ",
                         labels.size(), " labels"));
  Split sp;
  sp.name = name;
  sp.N = im.n;
  sp.C = 1;
  sp.H = im.rows;
  sp.W = im.cols;
  sp.images = std::move(im.pixels);
  sp.labels = std::move(labels);
  return sp;
}

constexpr size_t kCifarPixels = 3 * 32 * 32, kCifarRecord = 1 + kCifarPixels;

void read_cifar_batch(const std::string& path, Split& sp) {
  if (!fs::is_regular_file(path))
    throw InputError(cat("CIFAR-10: '", path,
                         "' is missing (expected the binary version, cifar-10-binary.tar.gz "
                         "from https://www.cs.toronto.edu/~kriz/cifar.html, unpacked)"));
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw InputError(cat("cannot open '", path, "' for reading"));
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)),
                                std::istreambuf_iterator<char>());
  if (bytes.empty() || bytes.size() % kCifarRecord != 0)
    throw InputError(cat("CIFAR-10: '", path, "' has ", bytes.size(),
                         " bytes, expected a positive multiple of ", kCifarRecord,
                         " (records of 1 label byte + 3x32x32 pixels)"));
  const size_t n = bytes.size() / kCifarRecord;
  for (size_t r = 0; r < n; ++r) {
    const auto* rec = reinterpret_cast<const uint8_t*>(bytes.data()) + r * kCifarRecord;
    if (rec[0] >= 10)
      throw InputError(cat("CIFAR-10: '", path, "': label ", int(rec[0]), " in record ", r,
                           " is outside [0, 10) (is this the CIFAR-100 binary?)"));
    sp.labels.push_back(rec[0]);
    sp.images.insert(sp.images.end(), rec + 1, rec + kCifarRecord);
  }
  sp.N += static_cast<int>(n);
}

} // namespace

void validate(const Dataset& ds, const std::string& path) {
  const int K = ds.classes;
  if (K < 2)
    fail(path, "/", cat("attribute 'classes': expected an integer >= 2, found ", K));
  if (ds.class_names.size() != static_cast<size_t>(K))
    fail(path, "/class_names",
         cat("expected ", K, " class names (attribute classes = ", K, "), found ",
             ds.class_names.size()));
  validate_split(ds.train, K, path, "/train");
  if (ds.has_test) {
    validate_split(ds.test, K, path, "/test");
    if (ds.test.C != ds.train.C || ds.test.H != ds.train.H || ds.test.W != ds.train.W)
      fail(path, "/test/images",
           cat("expected images of ", ds.train.C, "x", ds.train.H, "x", ds.train.W,
               " like /train/images, found ", ds.test.C, "x", ds.test.H, "x", ds.test.W));
  }
}

Dataset read_dataset(const std::string& path, bool with_test, size_t limit) {
  h5::File f(path, h5::File::Mode::Read);
  Dataset ds;
  if (!f.has_attr("/", "format"))
    fail(path, "/",
         cat("attribute 'format' missing: expected \"", kDatasetFormat,
             "\" (is this a dmis dataset? see docs/datasets.md, or make one with dmis import)"));
  const std::string format = f.attr_string("/", "format");
  if (format != kDatasetFormat)
    fail(path, "/",
         cat("attribute 'format' is \"", format, "\", expected \"", kDatasetFormat, "\""));
  if (!f.has_attr("/", "format_version"))
    fail(path, "/", cat("attribute 'format_version' missing: expected ", kDatasetFormatVersion));
  const int64_t version = f.attr_int("/", "format_version");
  if (version != kDatasetFormatVersion)
    fail(path, "/",
         cat("attribute 'format_version' is ", version, ", expected ", kDatasetFormatVersion,
             version > kDatasetFormatVersion ? " (written by a newer dmis?)" : ""));
  if (!f.has_attr("/", "classes"))
    fail(path, "/", "attribute 'classes' missing: expected the number of classes K (an integer)");
  const int64_t K = f.attr_int("/", "classes");
  if (K < 2 || K > 100000)
    fail(path, "/", cat("attribute 'classes': expected an integer in [2, 100000], found ", K));
  ds.classes = static_cast<int>(K);
  if (!f.has_attr("/", "name"))
    fail(path, "/",
         "attribute 'name' missing: expected the dataset's name, e.g. \"fashion-mnist\"");
  ds.name = f.attr_string("/", "name");
  ds.source = f.has_attr("/", "source") ? f.attr_string("/", "source") : "";
  if (f.exists("/class_names")) {
    expect_shape(f, "/class_names", {static_cast<size_t>(K)}, cat("one string per class, K = ", K));
    ds.class_names = f.read_strings("/class_names");
  } else {
    for (int k = 0; k < ds.classes; ++k)
      ds.class_names.push_back(std::to_string(k));
  }
  if (!f.exists("/train"))
    fail(path, "/train", "missing: expected a group with the training split (images, labels)");
  ds.train = read_split(f, "train", ds.classes, limit);
  if (with_test && f.exists("/test")) {
    ds.test = read_split(f, "test", ds.classes, 0);
    ds.has_test = true;
  }
  validate(ds, path);
  return ds;
}

void require_images(const Split& sp, const std::string& path, const std::string& who) {
  if (!sp.corrupted())
    return;
  fail(path, "/" + sp.name,
       cat("holds corrupted observations (corruption '", sp.corruption, "'), but ", who,
           " needs clean images in /", sp.name, "/images"));
}

std::string image_shape_mismatch(const Split& sp, const std::string& path, int channels,
                                 int resolution, const std::string& network) {
  if (sp.C == channels && sp.H == resolution && sp.W == resolution) return "";
  return cat("dataset '", path, "' has images of ", sp.C, "x", sp.H, "x", sp.W, " but ", network,
             " takes ", channels, "x", resolution, "x", resolution);
}

std::string read_train_corruption(const std::string& path) {
  h5::File f(path, h5::File::Mode::Read);
  if (!f.exists("/train/observations"))
    return "";
  return f.has_attr("/train", "corruption") ? f.attr_string("/train", "corruption") : "unknown";
}

std::vector<uint8_t> read_clean_images(const std::string& path, size_t limit) {
  h5::File f(path, h5::File::Mode::Read);
  const std::string obj = "/train/clean_images";
  if (!f.exists(obj))
    fail(path, obj,
         "missing: the ground truth of a corrupted split is only kept by dmis import --corrupt "
         "... --keep-clean");
  const auto s = f.shape(obj);
  if (s.size() != 4 || s[0] == 0)
    fail(path, obj, cat("expected (N, C, H, W) uint8, found ", shape_str(s)));
  const size_t n = limit > 0 ? std::min(limit, s[0]) : s[0];
  return n < s[0] ? f.read_uint8_rows(obj, 0, n).data : f.read_uint8(obj).data;
}

void write_dataset(const std::string& path, const Dataset& ds) {
  validate(ds, path);
  h5::write_atomic(path, [&](h5::File& f) {
    f.set_attr("/", "format", std::string(kDatasetFormat));
    f.set_attr("/", "format_version", int64_t(kDatasetFormatVersion));
    f.set_attr("/", "name", ds.name);
    f.set_attr("/", "classes", int64_t(ds.classes));
    f.set_attr("/", "source", ds.source);
    f.write("/class_names", {ds.class_names.size()}, ds.class_names);
    write_split(f, ds.train, ds.classes, "/train");
    if (ds.has_test)
      write_split(f, ds.test, ds.classes, "/test");
  });
}

Dataset import_fashion_mnist(const std::string& dir) {
  if (!fs::is_directory(dir))
    throw InputError(cat("Fashion-MNIST: '", dir,
                         "' is not a directory (Debian: apt install dataset-fashion-mnist, "
                         "which installs ",
                         kDebianFashionMnistDir, ")"));
  Dataset ds;
  ds.name = "fashion-mnist";
  ds.classes = 10;
  ds.class_names = fashion_mnist_names();
  ds.source = cat("Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, MIT licence), IDX files in ",
                  fs::absolute(dir).lexically_normal().string(), ", imported by dmis import");
  ds.train = idx_split(dir, "train", "train");
  ds.test = idx_split(dir, "t10k", "test");
  ds.has_test = true;
  validate(ds, dir);
  return ds;
}

Dataset import_cifar10(const std::string& dir_in) {
  std::string dir = dir_in;
  if (!fs::is_directory(dir))
    throw InputError(cat("CIFAR-10: '", dir, "' is not a directory"));
  if (!fs::exists(fs::path(dir) / "data_batch_1.bin") &&
      fs::is_directory(fs::path(dir) / "cifar-10-batches-bin"))
    dir = (fs::path(dir) / "cifar-10-batches-bin").string();
  Dataset ds;
  ds.name = "cifar10";
  ds.classes = 10;
  ds.class_names = cifar10_names();
  const fs::path meta = fs::path(dir) / "batches.meta.txt";
  if (fs::is_regular_file(meta)) {
    std::ifstream in(meta);
    std::vector<std::string> names;
    std::string line;
    while (std::getline(in, line)) {
      const auto b = line.find_first_not_of(" \t\r\n");
      if (b == std::string::npos)
        continue;
      const auto e = line.find_last_not_of(" \t\r\n");
      names.push_back(line.substr(b, e - b + 1));
    }
    if (names.size() != 10)
      throw InputError(cat("CIFAR-10: '", meta.string(), "' has ", names.size(),
                           " non-empty lines, expected 10 class names"));
    ds.class_names = names;
  }
  ds.source = cat("CIFAR-10 (Krizhevsky 2009), binary version in ",
                  fs::absolute(dir).lexically_normal().string(), ", imported by dmis import");
  ds.train.name = "train";
  ds.train.C = ds.test.C = 3;
  ds.train.H = ds.train.W = ds.test.H = ds.test.W = 32;
  for (int b = 1; b <= 5; ++b)
    read_cifar_batch((fs::path(dir) / cat("data_batch_", b, ".bin")).string(), ds.train);
  ds.test.name = "test";
  read_cifar_batch((fs::path(dir) / "test_batch.bin").string(), ds.test);
  ds.has_test = true;
  validate(ds, dir);
  return ds;
}

std::vector<long> label_histogram(const std::vector<int32_t>& labels, int K) {
  std::vector<long> h(static_cast<size_t>(std::max(K, 0)), 0);
  for (int32_t y : labels)
    if (y >= 0 && y < K)
      ++h[static_cast<size_t>(y)];
  return h;
}

} // namespace dmis::data

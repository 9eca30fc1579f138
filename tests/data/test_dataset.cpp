// The dataset file: write/read round trip, the first-N limit, atomic writes, and every bad input
// rejected with a message naming the file, the dataset path, the expectation and the finding.
#include <gtest/gtest.h>

#include <filesystem>

#include <hdf5.h>

#include <cstring>
#include <fstream>

#include "data/dataset.hpp"
#include "data_test_util.hpp"
#include "io/h5.hpp"

namespace dmis::test {
namespace {

using data::Dataset;

void expect_same_split(const data::Split& a, const data::Split& b) {
  EXPECT_EQ(a.N, b.N);
  EXPECT_EQ(a.C, b.C);
  EXPECT_EQ(a.H, b.H);
  EXPECT_EQ(a.W, b.W);
  EXPECT_EQ(a.images, b.images);
  EXPECT_EQ(a.labels, b.labels);
  EXPECT_EQ(a.clean_labels, b.clean_labels);
  EXPECT_EQ(a.candidates, b.candidates);
  EXPECT_EQ(a.unlabeled, b.unlabeled);
}

TEST(Dataset, RoundTripWithEveryOptionalArray) {
  ScratchDir dir("dataset");
  Dataset ds = synthetic_dataset(/*N=*/12, /*C=*/3, /*H=*/4, /*W=*/5, /*K=*/4, /*N_test=*/6);
  ds.name = "fashion-mnist";
  ds.class_names[2] = "Pullover ünicode";
  auto& tr = ds.train;
  tr.clean_labels = tr.labels;
  tr.candidates.assign(12 * 4, 0);
  for (int i = 0; i < 12; ++i) {
    tr.candidates[i * 4 + tr.labels[i]] = 1;
    tr.candidates[i * 4 + (tr.labels[i] + 1) % 4] = 1;
  }
  tr.unlabeled.assign(12, 0);
  tr.unlabeled[3] = tr.unlabeled[7] = 1;
  tr.labels[3] = -1;
  tr.labels[7] = -1;
  const std::string path = dir.file("ds.h5");
  data::write_dataset(path, ds);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));

  const Dataset back = data::read_dataset(path);
  EXPECT_EQ(back.name, ds.name);
  EXPECT_EQ(back.source, ds.source);
  EXPECT_EQ(back.classes, 4);
  EXPECT_EQ(back.class_names, ds.class_names);
  ASSERT_TRUE(back.has_test);
  expect_same_split(back.train, ds.train);
  expect_same_split(back.test, ds.test);
  EXPECT_EQ(back.train.name, "train");
  EXPECT_EQ(back.test.name, "test");

  // readable as a plain, self-describing HDF5 file
  h5::File f(path, h5::File::Mode::Read);
  EXPECT_EQ(f.attr_string("/", "format"), "dmis-dataset");
  EXPECT_EQ(f.attr_int("/", "format_version"), 1);
  EXPECT_EQ(f.shape("/train/images"), (std::vector<size_t>{12, 3, 4, 5}));
  EXPECT_EQ(f.shape("/train/candidates"), (std::vector<size_t>{12, 4}));
}

TEST(Dataset, LimitAndWithoutTest) {
  ScratchDir dir("dataset");
  Dataset ds = synthetic_dataset(10, 1, 3, 3, 3, 4);
  ds.train.clean_labels = ds.train.labels;
  ds.train.unlabeled.assign(10, 0);
  const std::string path = dir.file("ds.h5");
  data::write_dataset(path, ds);
  const Dataset back = data::read_dataset(path, /*with_test=*/false, /*limit=*/4);
  EXPECT_FALSE(back.has_test);
  EXPECT_EQ(back.test.N, 0);
  EXPECT_EQ(back.train.N, 4);
  EXPECT_EQ(back.train.images,
            std::vector<uint8_t>(ds.train.images.begin(), ds.train.images.begin() + 4 * 9));
  EXPECT_EQ(back.train.labels,
            std::vector<int32_t>(ds.train.labels.begin(), ds.train.labels.begin() + 4));
  EXPECT_EQ(back.train.clean_labels.size(), 4u);
  EXPECT_EQ(back.train.unlabeled.size(), 4u);
  EXPECT_EQ(data::read_dataset(path, true, 1000).train.N, 10); // a limit beyond N keeps all
}

TEST(Dataset, FailedWriteLeavesTheOldFileAlone) {
  ScratchDir dir("dataset");
  const std::string path = dir.file("ds.h5");
  data::write_dataset(path, synthetic_dataset(5, 1, 2, 2, 2));
  Dataset bad = synthetic_dataset(7, 1, 2, 2, 2);
  bad.train.labels[4] = 9;
  const std::string msg = input_error([&] { data::write_dataset(path, bad); });
  EXPECT_TRUE(contains_all(msg, {path, "/train/labels", "label 9 at index 4"}));
  EXPECT_EQ(data::read_dataset(path).train.N, 5);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  // a directory that does not exist: the error names the file, nothing is left behind
  const std::string nowhere = dir.file("no/such/dir/ds.h5");
  EXPECT_TRUE(contains_all(
      input_error([&] { data::write_dataset(nowhere, synthetic_dataset(5, 1, 2, 2, 2)); }),
      {nowhere + ".tmp", "cannot create"}));
}

// A dataset file written piece by piece, so that each piece can be broken.
struct RawFile {
  std::string format = "dmis-dataset";
  int64_t version = 1, classes = 3;
  bool with_name = true;
  std::vector<size_t> image_shape = {4, 1, 2, 2};
  std::vector<int32_t> labels = {0, 1, 2, 0};
  std::vector<uint8_t> candidates; // (4, 3) when not empty
  std::vector<uint8_t> unlabeled;

  void write(const std::string& path) const {
    h5::File f(path, h5::File::Mode::Create);
    f.set_attr("/", "format", format);
    f.set_attr("/", "format_version", version);
    f.set_attr("/", "classes", classes);
    if (with_name)
      f.set_attr("/", "name", std::string("raw"));
    size_t n = 1;
    for (size_t d : image_shape)
      n *= d;
    std::vector<uint8_t> px(n, 17);
    f.write("/train/images", image_shape, px.data());
    f.write("/train/labels", {labels.size()}, labels.data());
    if (!candidates.empty())
      f.write("/train/candidates", {candidates.size() / 3, 3}, candidates.data());
    if (!unlabeled.empty())
      f.write("/train/unlabeled", {unlabeled.size()}, unlabeled.data());
  }
};

std::string read_error(const std::string& path) {
  return input_error([&] { data::read_dataset(path); });
}

TEST(DatasetErrors, GoodRawFileReads) {
  ScratchDir dir("dataset");
  const std::string path = dir.file("raw.h5");
  RawFile().write(path);
  const Dataset ds = data::read_dataset(path);
  EXPECT_EQ(ds.train.N, 4);
  EXPECT_EQ(ds.class_names, (std::vector<std::string>{"0", "1", "2"})); // default names
}

// h5py writes Python bytes and numpy 'S' arrays as fixed-length NULLPAD strings that fill every
// byte (no terminator): the reader keeps their last character.
void set_fixed_attr(const std::string& path, const char* name, const std::string& v, H5T_str_t pad) {
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  const hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, v.size());
  H5Tset_strpad(type, pad);
  const hid_t space = H5Screate(H5S_SCALAR);
  if (H5Aexists(f, name) > 0) H5Adelete(f, name);
  const hid_t a = H5Acreate2(f, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(a, type, v.data());
  H5Aclose(a);
  H5Sclose(space);
  H5Tclose(type);
  H5Fclose(f);
}

TEST(DatasetErrors, FixedLengthStringsAsH5pyWritesThem) {
  ScratchDir dir("dataset");
  const std::string path = dir.file("raw.h5");
  RawFile().write(path);
  set_fixed_attr(path, "format", "dmis-dataset", H5T_STR_NULLPAD);
  set_fixed_attr(path, "name", "fixed name", H5T_STR_NULLPAD);
  {  // class names as a numpy 'S5' array: "shirt" fills its slot, "bag" is padded
    const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    const hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, 5);
    H5Tset_strpad(type, H5T_STR_NULLPAD);
    const hsize_t dims[1] = {3};
    const hid_t space = H5Screate_simple(1, dims, nullptr);
    const hid_t ds = H5Dcreate2(f, "/class_names", type, space, H5P_DEFAULT, H5P_DEFAULT,
                                H5P_DEFAULT);
    char buf[15];
    std::memset(buf, 0, sizeof buf);
    std::memcpy(buf, "shirt", 5);
    std::memcpy(buf + 5, "bag", 3);
    std::memcpy(buf + 10, "boots", 5);
    H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    H5Dclose(ds);
    H5Sclose(space);
    H5Tclose(type);
    H5Fclose(f);
  }
  const Dataset ds = data::read_dataset(path);
  EXPECT_EQ(ds.name, "fixed name");
  EXPECT_EQ(ds.class_names, (std::vector<std::string>{"shirt", "bag", "boots"}));
  // NULLTERM (h5py never writes it, other tools do): the terminator is not part of the string
  set_fixed_attr(path, "name", std::string("term", 5), H5T_STR_NULLTERM);
  EXPECT_EQ(data::read_dataset(path).name, "term");
}

TEST(DatasetErrors, MissingFile) {
  ScratchDir dir("dataset");
  const std::string path = dir.file("absent.h5");
  EXPECT_TRUE(contains_all(read_error(path), {path, "cannot open for reading"}));
}

TEST(DatasetErrors, NotHdf5) {
  ScratchDir dir("dataset");
  const std::string path = dir.file("text.h5");
  std::ofstream(path) << "just some text\n";
  EXPECT_TRUE(contains_all(read_error(path), {path, "is not an HDF5 file"}));
}

TEST(DatasetErrors, WrongFormatAttribute) {
  ScratchDir dir("dataset");
  const std::string path = dir.file("raw.h5");
  RawFile raw;
  raw.format = "dmis-checkpoint";
  raw.write(path);
  EXPECT_TRUE(contains_all(read_error(path), {path, "attribute 'format' is \"dmis-checkpoint\"",
                                              "expected \"dmis-dataset\""}));
  raw.format = "dmis-dataset";
  raw.version = 2;
  raw.write(path);
  EXPECT_TRUE(contains_all(read_error(path), {path, "'format_version' is 2, expected 1"}));
  raw.version = 1;
  raw.with_name = false;
  raw.write(path);
  EXPECT_TRUE(contains_all(read_error(path), {path, "attribute 'name' missing"}));
  raw.with_name = true;
  raw.classes = 1;
  raw.write(path);
  EXPECT_TRUE(contains_all(read_error(path), {path, "'classes'", "found 1"}));
  h5::File(path, h5::File::Mode::Create).write("/x", {1}, std::vector<int32_t>{1}.data());
  EXPECT_TRUE(contains_all(read_error(path), {path, "attribute 'format' missing", "dmis-dataset"}));
}

// replaces dataset `name` of the file with one of `dims` of HDF5 type `type`, filled with `v`
// (one value of that type repeated); an unallocated huge one when `v` is null
void replace_dataset(const std::string& path, const char* name, hid_t type, std::vector<hsize_t> dims,
                     const void* v, size_t vsize) {
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  if (H5Lexists(f, name, H5P_DEFAULT) > 0) H5Ldelete(f, name, H5P_DEFAULT);
  const hid_t space = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
  const hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  if (!v) {  // chunked, nothing written: a huge shape in a small file
    std::vector<hsize_t> chunk(dims.size(), 1);
    H5Pset_chunk(dcpl, static_cast<int>(chunk.size()), chunk.data());
  }
  const hid_t ds = H5Dcreate2(f, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  if (v) {
    size_t n = 1;
    for (auto d : dims) n *= d;
    std::vector<char> buf(n * vsize);
    for (size_t i = 0; i < n; ++i) std::memcpy(buf.data() + i * vsize, v, vsize);
    H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data());
  }
  H5Dclose(ds);
  H5Pclose(dcpl);
  H5Sclose(space);
  H5Fclose(f);
}

// values HDF5 would convert silently (floats into integers truncated, wide integers into uint8
// clipped) and shapes no memory holds are errors naming the file and the dataset
TEST(DatasetErrors, StoredTypesAndSizesAreChecked) {
  ScratchDir dir("dataset");
  const std::string path = dir.file("raw.h5");
  const float half = 0.5f, three_half = 3.5f;
  const uint16_t wide = 300;
  const int64_t label64 = 1;
  RawFile().write(path);
  replace_dataset(path, "/train/images", H5T_NATIVE_FLOAT, {4, 1, 2, 2}, &half, sizeof half);
  EXPECT_TRUE(contains_all(read_error(path), {path, "/train/images", "stores float32, expected uint8"}));
  RawFile().write(path);
  replace_dataset(path, "/train/images", H5T_NATIVE_UINT16, {4, 1, 2, 2}, &wide, sizeof wide);
  EXPECT_TRUE(contains_all(read_error(path), {path, "/train/images", "stores uint16, expected uint8",
                                              "would be clipped"}));
  RawFile().write(path);
  replace_dataset(path, "/train/labels", H5T_NATIVE_FLOAT, {4}, &three_half, sizeof three_half);
  EXPECT_TRUE(contains_all(read_error(path), {path, "/train/labels", "stores float32, expected integers",
                                              "truncated"}));
  // int64 labels, as numpy writes them by default, read as they are
  RawFile().write(path);
  replace_dataset(path, "/train/labels", H5T_NATIVE_INT64, {4}, &label64, sizeof label64);
  EXPECT_EQ(data::read_dataset(path).train.labels, (std::vector<int32_t>{1, 1, 1, 1}));
  // a shape of 2^30 images (842 GB) in a file of a few KB
  RawFile().write(path);
  replace_dataset(path, "/train/images", H5T_NATIVE_UINT8, {hsize_t(1) << 30, 1, 28, 28}, nullptr, 1);
  EXPECT_TRUE(contains_all(read_error(path), {path, "/train/images", "declares shape (1073741824, 1, 28, 28)",
                                              "more than this machine's memory"}));
}

// a file cut short (an interrupted copy): its signature reads, its structure does not
TEST(DatasetErrors, TruncatedFileSaysSo) {
  ScratchDir dir("dataset");
  const std::string path = dir.file("raw.h5");
  RawFile().write(path);
  const auto size = std::filesystem::file_size(path);
  std::filesystem::resize_file(path, size / 2);
  EXPECT_TRUE(contains_all(read_error(path), {path, "damaged or cut short", std::to_string(size / 2) + " bytes"}));
}

TEST(DatasetErrors, ImagesOfRank3) {
  ScratchDir dir("dataset");
  const std::string path = dir.file("raw.h5");
  RawFile raw;
  raw.image_shape = {4, 2, 2};
  raw.write(path);
  EXPECT_TRUE(contains_all(read_error(path), {path, "/train/images", "expected rank 4 (N, C, H, W)",
                                              "found rank 3 (4, 2, 2)"}));
}

TEST(DatasetErrors, LabelCountMismatch) {
  ScratchDir dir("dataset");
  const std::string path = dir.file("raw.h5");
  RawFile raw;
  raw.labels = {0, 1, 2};
  raw.write(path);
  EXPECT_TRUE(
      contains_all(read_error(path), {path, "/train/labels", "expected shape (4,)", "found (3,)"}));
}

TEST(DatasetErrors, LabelOutOfRange) {
  ScratchDir dir("dataset");
  const std::string path = dir.file("raw.h5");
  RawFile raw;
  raw.labels = {0, 1, 7, 0};
  raw.write(path);
  EXPECT_TRUE(contains_all(read_error(path),
                           {path, "/train/labels", "label 7 at index 2 is outside [0, 3)"}));
  // -1 is only allowed where the image is marked unlabelled (or has a candidate set)
  raw.labels = {0, -1, 2, 0};
  raw.write(path);
  EXPECT_TRUE(contains_all(read_error(path), {path, "/train/labels", "label -1 (none) at index 1",
                                              "/train/unlabeled[1] is not 1"}));
  raw.unlabeled = {0, 1, 0, 0};
  raw.write(path);
  EXPECT_EQ(data::read_dataset(path).train.labels[1], -1);
}

TEST(DatasetErrors, EmptyCandidateRow) {
  ScratchDir dir("dataset");
  const std::string path = dir.file("raw.h5");
  RawFile raw;
  raw.candidates = {1, 0, 0, 0, 0, 0, 1, 1, 1, 0, 1, 0};
  raw.write(path);
  EXPECT_TRUE(contains_all(read_error(path), {path, "/train/candidates", "row 1 is empty"}));
  raw.candidates = {1, 0, 0, 0, 1}; // wrong shape
  raw.write(path);
  EXPECT_TRUE(contains_all(read_error(path), {path, "/train/candidates", "expected shape (4, 3)"}));
}

TEST(DatasetErrors, MissingTrainingImagesAndLabels) {
  ScratchDir dir("dataset");
  const std::string path = dir.file("raw.h5");
  {
    h5::File f(path, h5::File::Mode::Create);
    f.set_attr("/", "format", std::string("dmis-dataset"));
    f.set_attr("/", "format_version", int64_t(1));
    f.set_attr("/", "classes", int64_t(3));
    f.set_attr("/", "name", std::string("raw"));
    std::vector<uint8_t> px(4 * 4, 0);
    f.write("/train/images", {4, 1, 2, 2}, px.data());
  }
  EXPECT_TRUE(contains_all(read_error(path), {path, "/train/labels", "missing", "int32"}));
}

TEST(DatasetErrors, ValidateInMemory) {
  Dataset ds = synthetic_dataset(6, 1, 2, 2, 3, 2);
  ds.test.H = 3;
  ds.test.images.resize(2 * 1 * 3 * 2);
  EXPECT_TRUE(contains_all(input_error([&] { data::validate(ds, "mem.h5"); }),
                           {"mem.h5", "/test/images", "like /train/images"}));
  ds = synthetic_dataset(6, 1, 2, 2, 3);
  ds.train.images.pop_back();
  EXPECT_TRUE(contains_all(input_error([&] { data::validate(ds, "mem.h5"); }),
                           {"/train/images", "expected 24 pixels", "found 23"}));
  ds = synthetic_dataset(6, 1, 2, 2, 3);
  ds.class_names.pop_back();
  EXPECT_TRUE(contains_all(input_error([&] { data::validate(ds, "mem.h5"); }),
                           {"/class_names", "expected 3 class names", "found 2"}));
  ds = synthetic_dataset(6, 1, 2, 2, 3);
  ds.train.clean_labels = {0, 1, 2, 3, 0, 1};
  EXPECT_TRUE(contains_all(input_error([&] { data::validate(ds, "mem.h5"); }),
                           {"/train/clean_labels", "label 3 at index 3"}));
}

} // namespace
} // namespace dmis::test

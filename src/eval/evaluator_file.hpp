#pragma once
// The evaluator file (HDF5, written by `dmis eval train-evaluator`):
//
//   /                  attributes format = "dmis-evaluator", format_version = 1, dmis_version,
//                      git, test_accuracy (on the dataset's test split), and how it was trained:
//                      dataset, labels ("clean_labels" or "labels"), train_images, epochs, steps,
//                      batch, lr, weight_decay, seed, flip, train_seconds, images_per_second
//   /config            attributes in_channels, resolution, classes, groups, channels (list),
//                      strides (list), gn_eps
//   /params/<name>     one float dataset per tensor, named and shaped as a PyTorch state_dict
//                      (conv0.weight (32, 1, 3, 3), ..., fc.bias (10))
//   /test_accuracy_per_class   (K) double
//
// Written to path.tmp and renamed, so a failure never leaves a half-written file.
#include <cstdint>
#include <string>
#include <vector>

#include "core/params.hpp"
#include "models/evaluator.hpp"

namespace dmis::eval {

struct EvaluatorFile {
  models::EvaluatorConfig config;
  std::vector<float> params; // flat, in evaluator_param_table(config) order
  double test_accuracy = -1;
  std::vector<double> test_per_class;
  // how it was trained
  std::string dataset, labels;
  long train_images = 0, steps = 0;
  double epochs = 0, lr = 0, weight_decay = 0, train_seconds = 0, images_per_second = 0;
  int batch = 0;
  uint64_t seed = 0;
  bool flip = false;
};

void write_evaluator(const std::string& path, const EvaluatorFile& e);

/// Reads and checks an evaluator file: InputError naming the file, the object, what was
/// expected and what was found.
EvaluatorFile read_evaluator(const std::string& path);

} // namespace dmis::eval

#include "eval/evaluator_file.hpp"

#include <cstdio>

#include "core/error.hpp"
#include "core/version.hpp"
#include "io/h5.hpp"

namespace dmis::eval {

namespace {
std::string shape_string(const std::vector<size_t>& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i)
    out += (i ? ", " : "") + std::to_string(s[i]);
  return out + ")";
}
} // namespace

void write_evaluator(const std::string& path, const EvaluatorFile& e) {
  const ParamTable table = models::evaluator_param_table(e.config);
  if (e.params.size() != table.total())
    throw Error(cat("write_evaluator: ", e.params.size(), " parameters, the configuration has ",
                    table.total()));
  h5::write_atomic(path, [&](h5::File& f) {
    f.set_attr("/", "format", std::string("dmis-evaluator"));
    f.set_attr("/", "format_version", int64_t(1));
    f.set_attr("/", "dmis_version", std::string(version()));
    f.set_attr("/", "git", std::string(git_hash()));
    f.set_attr("/", "test_accuracy", e.test_accuracy);
    f.set_attr("/", "dataset", e.dataset);
    f.set_attr("/", "labels", e.labels);
    f.set_attr("/", "train_images", int64_t(e.train_images));
    f.set_attr("/", "epochs", e.epochs);
    f.set_attr("/", "steps", int64_t(e.steps));
    f.set_attr("/", "batch", int64_t(e.batch));
    f.set_attr("/", "lr", e.lr);
    f.set_attr("/", "weight_decay", e.weight_decay);
    f.set_attr("/", "seed", int64_t(e.seed));
    f.set_attr("/", "flip", int64_t(e.flip ? 1 : 0));
    f.set_attr("/", "train_seconds", e.train_seconds);
    f.set_attr("/", "images_per_second", e.images_per_second);
    f.make_groups("/config");
    const auto& c = e.config;
    f.set_attr("/config", "in_channels", int64_t(c.in_channels));
    f.set_attr("/config", "resolution", int64_t(c.resolution));
    f.set_attr("/config", "classes", int64_t(c.classes));
    f.set_attr("/config", "groups", int64_t(c.groups));
    f.set_attr("/config", "channels", std::vector<int64_t>(c.channels.begin(), c.channels.end()));
    f.set_attr("/config", "strides", std::vector<int64_t>(c.strides.begin(), c.strides.end()));
    f.set_attr("/config", "gn_eps", static_cast<double>(c.gn_eps));
    f.make_groups("/params");
    for (const ParamInfo& p : table.entries()) {
      std::vector<size_t> shape(p.shape.begin(), p.shape.end());
      f.write("/params/" + p.name, shape, e.params.data() + p.offset);
    }
    if (!e.test_per_class.empty())
      f.write("/test_accuracy_per_class", {e.test_per_class.size()}, e.test_per_class.data());
  });
}

EvaluatorFile read_evaluator(const std::string& path) {
  const h5::File f(path, h5::File::Mode::Read);
  const std::string format = f.has_attr("/", "format") ? f.attr_string("/", "format") : "";
  if (format != "dmis-evaluator")
    throw InputError(cat("'", path, "' is not a dmis evaluator (its root attribute 'format' is ",
                         format.empty() ? std::string("missing") : "'" + format + "'",
                         ", expected 'dmis-evaluator'; make one with dmis eval train-evaluator)"));
  const int64_t version = f.attr_int("/", "format_version");
  if (version != 1)
    throw InputError(cat("evaluator '", path, "': format_version is ", version, ", expected 1"));
  EvaluatorFile e;
  auto& c = e.config;
  c.in_channels = static_cast<int>(f.attr_int("/config", "in_channels"));
  c.resolution = static_cast<int>(f.attr_int("/config", "resolution"));
  c.classes = static_cast<int>(f.attr_int("/config", "classes"));
  c.groups = static_cast<int>(f.attr_int("/config", "groups"));
  const auto ch = f.attr_ints("/config", "channels"), st = f.attr_ints("/config", "strides");
  c.channels.assign(ch.begin(), ch.end());
  c.strides.assign(st.begin(), st.end());
  c.gn_eps = static_cast<float>(f.attr_double("/config", "gn_eps"));
  try {
    c.validate();
  } catch (const InputError& err) {
    throw InputError(cat("evaluator '", path, "': /config: ", err.what()));
  }
  const ParamTable table = models::evaluator_param_table(c);
  e.params.assign(table.total(), 0.0f);
  for (const ParamInfo& p : table.entries()) {
    const std::string name = "/params/" + p.name;
    if (!f.exists(name))
      throw InputError(cat("evaluator '", path, "': dataset ", name, " is missing"));
    const auto a = f.read_float(name);
    const std::vector<size_t> want(p.shape.begin(), p.shape.end());
    if (a.shape != want)
      throw InputError(cat("evaluator '", path, "': ", name, " has shape ", shape_string(a.shape),
                           ", expected ", shape_string(want), " for its /config"));
    std::copy(a.data.begin(), a.data.end(), e.params.begin() + p.offset);
  }
  e.test_accuracy = f.attr_double("/", "test_accuracy");
  if (f.exists("/test_accuracy_per_class"))
    e.test_per_class = f.read_double("/test_accuracy_per_class").data;
  e.dataset = f.attr_string("/", "dataset");
  e.labels = f.attr_string("/", "labels");
  e.train_images = static_cast<long>(f.attr_int("/", "train_images"));
  e.epochs = f.attr_double("/", "epochs");
  e.steps = static_cast<long>(f.attr_int("/", "steps"));
  e.batch = static_cast<int>(f.attr_int("/", "batch"));
  e.lr = f.attr_double("/", "lr");
  e.weight_decay = f.attr_double("/", "weight_decay");
  e.seed = static_cast<uint64_t>(f.attr_int("/", "seed"));
  e.flip = f.attr_int("/", "flip") != 0;
  e.train_seconds = f.attr_double("/", "train_seconds");
  e.images_per_second = f.attr_double("/", "images_per_second");
  return e;
}

} // namespace dmis::eval

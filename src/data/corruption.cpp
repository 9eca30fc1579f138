#include "data/corruption.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "core/error.hpp"
#include "kernels/eti.hpp"

namespace dmis::data {

namespace {

[[noreturn]] void bad(const std::string& spec, const std::string& what) {
  throw UsageError(cat("corruption '", spec, "': ", what,
                       " (known: mask:P, box:S, box:HxW, box:FRAC, blur:SIGMA[,width:K], "
                       "each optionally followed by ,noise:SIGMA_Y)"));
}

double number(const std::string& spec, const std::string& key, const std::string& v) {
  size_t used = 0;
  double x = 0;
  try {
    x = std::stod(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (v.empty() || used != v.size() || !std::isfinite(x))
    bad(spec, cat("'", key, "' expects a number, found '", v, "'"));
  return x;
}

int integer(const std::string& spec, const std::string& key, const std::string& v) {
  const double x = number(spec, key, v);
  if (x != std::floor(x) || x < 1 || x > 1e6)
    bad(spec, cat("'", key, "' expects a positive integer, found '", v, "'"));
  return static_cast<int>(x);
}

std::string fmt(double v) {
  std::ostringstream os;
  os.precision(10);
  os << v;
  return os.str();
}

}  // namespace

std::string Corruption::spec() const {
  std::string s;
  switch (kind) {
    case Kind::None: return "none";
    case Kind::Mask: s = "mask:" + fmt(p); break;
    case Kind::Box:
      s = box_frac > 0 ? "box:" + fmt(box_frac) : cat("box:", box_h, "x", box_w);
      break;
    case Kind::Blur: s = cat("blur:", fmt(blur_sigma), ",width:", blur_width); break;
  }
  if (noise > 0) s += ",noise:" + fmt(noise);
  return s;
}

void Corruption::box_size(int H, int W, int& bh, int& bw) const {
  if (box_frac > 0) {
    const int side = static_cast<int>(std::lround(std::sqrt(box_frac * H * W)));
    bh = std::max(1, std::min(H, side));
    bw = std::max(1, std::min(W, side));
  } else {
    bh = std::min(H, box_h);
    bw = std::min(W, box_w);
  }
}

double Corruption::observed_fraction(int H, int W) const {
  if (kind == Kind::Mask) return 1.0 - p;
  if (kind == Kind::Box) {
    int bh, bw;
    box_size(H, W, bh, bw);
    return 1.0 - static_cast<double>(bh) * bw / (static_cast<double>(H) * W);
  }
  return 1.0;
}

Corruption parse_corruption(const std::string& spec) {
  Corruption c;
  if (spec == "none") return c;
  std::vector<std::string> parts;
  std::stringstream ss(spec);
  for (std::string part; std::getline(ss, part, ',');) parts.push_back(part);
  if (parts.empty() || spec.empty()) bad(spec, "empty");
  for (size_t i = 0; i < parts.size(); ++i) {
    const std::string& part = parts[i];
    const auto colon = part.find(':');
    if (colon == std::string::npos) bad(spec, cat("'", part, "' expects KEY:VALUE"));
    const std::string key = part.substr(0, colon), v = part.substr(colon + 1);
    if (i == 0) {
      if (key == "mask") {
        c.kind = Corruption::Kind::Mask;
        c.p = number(spec, key, v);
        if (!(c.p >= 0 && c.p < 1)) bad(spec, cat("mask rate expects [0, 1), found ", v));
      } else if (key == "box") {
        c.kind = Corruption::Kind::Box;
        const auto x = v.find('x');
        if (x != std::string::npos) {
          c.box_h = integer(spec, "box height", v.substr(0, x));
          c.box_w = integer(spec, "box width", v.substr(x + 1));
        } else if (v.find('.') != std::string::npos) {
          c.box_frac = number(spec, key, v);
          if (!(c.box_frac > 0 && c.box_frac < 1))
            bad(spec, cat("box fraction expects (0, 1), found ", v));
        } else {
          c.box_h = c.box_w = integer(spec, "box size", v);
        }
      } else if (key == "blur") {
        c.kind = Corruption::Kind::Blur;
        c.blur_sigma = number(spec, key, v);
        if (!(c.blur_sigma > 0 && c.blur_sigma <= 100))
          bad(spec, cat("blur sigma expects (0, 100] pixels, found ", v));
        c.blur_width = 2 * static_cast<int>(std::ceil(3 * c.blur_sigma)) + 1;
      } else {
        bad(spec, cat("unknown channel '", key, "'"));
      }
    } else if (key == "noise") {
      c.noise = number(spec, key, v);
      if (!(c.noise >= 0 && c.noise <= 10)) bad(spec, cat("noise expects [0, 10], found ", v));
    } else if (key == "width") {
      if (c.kind != Corruption::Kind::Blur) bad(spec, "'width' belongs to blur");
      c.blur_width = integer(spec, key, v);
      if (c.blur_width % 2 == 0) bad(spec, cat("blur width expects an odd integer, found ", v));
    } else {
      bad(spec, cat("unknown option '", key, "'"));
    }
  }
  return c;
}

CorruptionKernel::CorruptionKernel(const Corruption& c, int H, int W, uint64_t seed)
    : p(static_cast<float>(c.p)),
      noise(static_cast<float>(c.noise)),
      blur_sigma(static_cast<float>(c.blur_sigma)),
      blur_width(c.blur_width),
      gen(seed, rng::kCorruption) {
  switch (c.kind) {
    case Corruption::Kind::None: kind = 0; break;
    case Corruption::Kind::Mask: kind = 1; break;
    case Corruption::Kind::Box:
      kind = 2;
      c.box_size(H, W, box_h, box_w);
      break;
    case Corruption::Kind::Blur: kind = 3; break;
  }
}

template <class Exec>
void corrupt(const Exec& exec, const CorruptionKernel& k, uint32_t round,
             const Tensor1<const int, Exec>& images, const Tensor4<const float, Exec>& x,
             const Tensor4<float, Exec>& obs, const Tensor4<float, Exec>& mask) {
  const int B = x.extent(0), C = x.extent(1), H = x.extent(2), W = x.extent(3);
  if (obs.extent(0) != size_t(B) || obs.extent(1) != size_t(C) || obs.extent(2) != size_t(H) ||
      obs.extent(3) != size_t(W) || mask.extent(0) != size_t(B) || mask.extent(1) != 1 ||
      mask.extent(2) != size_t(H) || mask.extent(3) != size_t(W) || images.extent(0) != size_t(B))
    throw ShapeError(cat("dmis::data::corrupt: x (", B, ", ", C, ", ", H, ", ", W,
                         ") needs obs of the same shape, mask (B, 1, H, W) and B image indices"));
  Kokkos::parallel_for(
      "dmis::data::corrupt",
      Kokkos::MDRangePolicy<Exec, Kokkos::Rank<3>>(exec, {0, 0, 0}, {B, H, W}),
      KOKKOS_LAMBDA(int b, int h, int w) {
        const uint32_t img = static_cast<uint32_t>(images(b));
        const int m = k.observed(img, round, H, W, h, w);
        mask(b, 0, h, w) = float(m);
        for (int c = 0; c < C; ++c)
          obs(b, c, h, w) = m ? k.forward(&x(b, 0, 0, 0), img, round, C, H, W, c, h, w) : 0.f;
      });
}

void corrupt_images(const Corruption& c, uint64_t seed, int N, int C, int H, int W,
                    const std::vector<uint8_t>& images, std::vector<float>& observations,
                    std::vector<uint8_t>& masks) {
  using Exec = HostExec;
  const size_t n = static_cast<size_t>(C) * H * W;
  if (images.size() != static_cast<size_t>(N) * n)
    throw Error(cat("corrupt_images: ", images.size(), " pixels for ", N, " images of ", n));
  observations.assign(static_cast<size_t>(N) * n, 0.f);
  masks.assign(static_cast<size_t>(N) * H * W, 0);
  const CorruptionKernel k(c, H, W, seed);
  // in chunks, so that the float copy of the images stays small
  const int chunk = 4096;
  Kokkos::View<float****, Kokkos::LayoutRight, Exec> x("dmis::data::corrupt_x", chunk, C, H, W);
  Kokkos::View<float****, Kokkos::LayoutRight, Exec> m("dmis::data::corrupt_mask", chunk, 1, H, W);
  Kokkos::View<int*, Kokkos::LayoutRight, Exec> idx("dmis::data::corrupt_index", chunk);
  Exec exec;
  for (int first = 0; first < N; first += chunk) {
    const int nb = std::min(chunk, N - first);
    for (size_t e = 0; e < static_cast<size_t>(nb) * n; ++e)
      x.data()[e] = images[static_cast<size_t>(first) * n + e] / 127.5f - 1.f;
    for (int b = 0; b < nb; ++b) idx(b) = first + b;
    const Tensor4<float, Exec> obs(observations.data() + static_cast<size_t>(first) * n, nb, C, H, W);
    const Tensor4<float, Exec> mk(m.data(), nb, 1, H, W);
    corrupt<Exec>(exec, k, 0u, Tensor1<const int, Exec>(idx.data(), nb),
                  Tensor4<const float, Exec>(x.data(), nb, C, H, W), obs, mk);
    exec.fence();
    for (size_t e = 0; e < static_cast<size_t>(nb) * H * W; ++e)
      masks[static_cast<size_t>(first) * H * W + e] = m.data()[e] > 0.5f ? 1 : 0;
  }
}

#define DMIS_INST(E, T) DMIS_INST_##T(E)
#define DMIS_INST_float(E)                                                                       \
  template void corrupt<E>(const E&, const CorruptionKernel&, uint32_t,                         \
                           const Tensor1<const int, E>&, const Tensor4<const float, E>&,        \
                           const Tensor4<float, E>&, const Tensor4<float, E>&);
#define DMIS_INST_double(E)
DMIS_FOR_EACH_EXEC_AND_SCALAR(DMIS_INST)
#undef DMIS_INST

}  // namespace dmis::data

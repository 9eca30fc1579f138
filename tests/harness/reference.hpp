#pragma once
// Naive host references in double: plain loops written from the PyTorch definitions, sharing no
// code with the kernels they check.
#include <algorithm>
#include <cmath>
#include <vector>

namespace dmis::test::ref {

using Vec = std::vector<double>;

inline Vec conv2d(const Vec& x, int B, int Cin, int H, int W, const Vec& w, int Cout, int k,
                  const Vec& bias, int stride) {
  const int pad = (k - 1) / 2;
  const int Ho = (H + 2 * pad - k) / stride + 1, Wo = (W + 2 * pad - k) / stride + 1;
  Vec y(static_cast<size_t>(B) * Cout * Ho * Wo, 0.0);
  for (int b = 0; b < B; ++b)
    for (int co = 0; co < Cout; ++co)
      for (int oh = 0; oh < Ho; ++oh)
        for (int ow = 0; ow < Wo; ++ow) {
          double s = bias.empty() ? 0.0 : bias[co];
          for (int ci = 0; ci < Cin; ++ci)
            for (int ky = 0; ky < k; ++ky)
              for (int kx = 0; kx < k; ++kx) {
                const int ih = oh * stride - pad + ky, iw = ow * stride - pad + kx;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                s += w[((co * Cin + ci) * k + ky) * k + kx] * x[((b * Cin + ci) * H + ih) * W + iw];
              }
          y[((b * Cout + co) * Ho + oh) * Wo + ow] = s;
        }
  return y;
}

inline Vec linear(const Vec& x, int B, int In, const Vec& w, int Out, const Vec& bias) {
  Vec y(static_cast<size_t>(B) * Out);
  for (int b = 0; b < B; ++b)
    for (int o = 0; o < Out; ++o) {
      double s = bias.empty() ? 0.0 : bias[o];
      for (int i = 0; i < In; ++i) s += x[b * In + i] * w[o * In + i];
      y[b * Out + o] = s;
    }
  return y;
}

inline Vec groupnorm(const Vec& x, int B, int C, int H, int W, int G, const Vec& gamma,
                     const Vec& beta, double eps) {
  Vec y(x.size());
  const int cpg = C / G, HW = H * W;
  for (int b = 0; b < B; ++b)
    for (int g = 0; g < G; ++g) {
      double m = 0, v = 0;
      for (int c = g * cpg; c < (g + 1) * cpg; ++c)
        for (int i = 0; i < HW; ++i) m += x[(b * C + c) * HW + i];
      m /= cpg * HW;
      for (int c = g * cpg; c < (g + 1) * cpg; ++c)
        for (int i = 0; i < HW; ++i) v += std::pow(x[(b * C + c) * HW + i] - m, 2);
      v /= cpg * HW;
      for (int c = g * cpg; c < (g + 1) * cpg; ++c)
        for (int i = 0; i < HW; ++i) {
          const size_t j = static_cast<size_t>(b * C + c) * HW + i;
          y[j] = gamma[c] * (x[j] - m) / std::sqrt(v + eps) + beta[c];
        }
    }
  return y;
}

inline Vec silu(const Vec& x) {
  Vec y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] / (1 + std::exp(-x[i]));
  return y;
}

/// h = v softmax(q^T k / sqrt(C))^T per sample; qkv (B, 3C, N).
inline Vec attention(const Vec& qkv, int B, int C, int N) {
  Vec h(static_cast<size_t>(B) * C * N, 0.0);
  const double scale = 1.0 / std::sqrt(static_cast<double>(C));
  auto at = [&](int b, int c, int n) { return qkv[(static_cast<size_t>(b) * 3 * C + c) * N + n]; };
  for (int b = 0; b < B; ++b)
    for (int i = 0; i < N; ++i) {
      Vec s(N);
      for (int j = 0; j < N; ++j) {
        double d = 0;
        for (int c = 0; c < C; ++c) d += at(b, c, i) * at(b, C + c, j);
        s[j] = d * scale;
      }
      const double mx = *std::max_element(s.begin(), s.end());
      double z = 0;
      for (auto& e : s) z += (e = std::exp(e - mx));
      for (int c = 0; c < C; ++c) {
        double acc = 0;
        for (int j = 0; j < N; ++j) acc += at(b, 2 * C + c, j) * s[j] / z;
        h[(static_cast<size_t>(b) * C + c) * N + i] = acc;
      }
    }
  return h;
}

inline Vec upsample2x(const Vec& x, int B, int C, int H, int W) {
  Vec y(static_cast<size_t>(B) * C * 4 * H * W);
  for (int b = 0; b < B; ++b)
    for (int c = 0; c < C; ++c)
      for (int oh = 0; oh < 2 * H; ++oh)
        for (int ow = 0; ow < 2 * W; ++ow)
          y[((b * C + c) * 2 * H + oh) * 2 * W + ow] = x[((b * C + c) * H + oh / 2) * W + ow / 2];
  return y;
}

inline Vec concat(const Vec& a, int Ca, const Vec& b2, int Cb, int B, int HW) {
  Vec y;
  for (int b = 0; b < B; ++b) {
    y.insert(y.end(), a.begin() + static_cast<long>(b) * Ca * HW,
             a.begin() + static_cast<long>(b + 1) * Ca * HW);
    y.insert(y.end(), b2.begin() + static_cast<long>(b) * Cb * HW,
             b2.begin() + static_cast<long>(b + 1) * Cb * HW);
  }
  return y;
}

inline Vec channel_add(const Vec& x, const Vec& e, int B, int C, int HW) {
  Vec y(x.size());
  for (int b = 0; b < B; ++b)
    for (int c = 0; c < C; ++c)
      for (int i = 0; i < HW; ++i) y[(b * C + c) * HW + i] = x[(b * C + c) * HW + i] + e[b * C + c];
  return y;
}

inline Vec sinusoidal(const Vec& c, int D) {
  const int half = D / 2;
  Vec y(c.size() * D);
  for (size_t b = 0; b < c.size(); ++b)
    for (int i = 0; i < half; ++i) {
      const double f = std::exp(-std::log(10000.0) * i / half);
      y[b * D + i] = std::cos(c[b] * f);
      y[b * D + half + i] = std::sin(c[b] * f);
    }
  return y;
}

/// per-sample weighted MSE and their mean.
inline Vec mse_per_sample(const Vec& p, const Vec& t, const Vec& w, int B) {
  const size_t n = p.size() / B;
  Vec out(B);
  for (int b = 0; b < B; ++b) {
    double s = 0;
    for (size_t i = 0; i < n; ++i) s += std::pow(p[b * n + i] - t[b * n + i], 2);
    out[b] = (w.empty() ? 1.0 : w[b]) * s / n;
  }
  return out;
}

/// y (B, C) = mean over the n = H*W positions of x (B, C, H, W).
inline Vec global_avg_pool(const Vec& x, int B, int C, int n) {
  Vec y(static_cast<size_t>(B) * C, 0.0);
  for (int b = 0; b < B; ++b)
    for (int c = 0; c < C; ++c) {
      double s = 0;
      for (int i = 0; i < n; ++i) s += x[(static_cast<size_t>(b) * C + c) * n + i];
      y[b * C + c] = s / n;
    }
  return y;
}

/// softmax probabilities (B, K) and per-sample -log p[label] (B), straight from the definition
/// (in long double, so that a large logit does not overflow the reference either).
inline void softmax_xent(const Vec& logits, int B, int K, const std::vector<int>& labels,
                         Vec& probs, Vec& loss) {
  probs.assign(static_cast<size_t>(B) * K, 0.0);
  loss.assign(B, 0.0);
  for (int b = 0; b < B; ++b) {
    long double mx = logits[b * K];
    for (int k = 1; k < K; ++k) mx = std::max<long double>(mx, logits[b * K + k]);
    long double z = 0;
    for (int k = 0; k < K; ++k) z += std::exp(static_cast<long double>(logits[b * K + k]) - mx);
    for (int k = 0; k < K; ++k)
      probs[b * K + k] =
          static_cast<double>(std::exp(static_cast<long double>(logits[b * K + k]) - mx) / z);
    loss[b] = static_cast<double>(-std::log(probs[b * K + labels[b]]));
  }
}

}  // namespace dmis::test::ref

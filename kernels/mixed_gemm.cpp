#include "kernels/mixed_gemm.hpp"

#include <cstdint>
#include <cstdlib>
#include <mutex>

#if defined(__unix__)
#include <dlfcn.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#if defined(KOKKOS_ENABLE_CUDA)
#include <cublas_v2.h>
#endif

#include "core/error.hpp"

namespace dmis::kernels {

namespace {
GemmPrecision& precision_ref() {
  static GemmPrecision p = GemmPrecision::FP32;
  return p;
}

Bf16Layout initial_bf16_layout() {
  const char* env = std::getenv("DMIS_BF16_LAYOUT");
  if (env && *env) return parse_bf16_layout(env, "DMIS_BF16_LAYOUT");
  return cpu_has_amx_bf16() ? Bf16Layout::Transposed : Bf16Layout::Plain;
}
Bf16Layout& layout_ref() {
  static Bf16Layout l = initial_bf16_layout();
  return l;
}

// oneDNN's C API (dnnl.h of 2.x and 3.x; declared here because Debian ships the library with
// PyTorch (libdnnl2) but not its headers). Row-major, like the rest of this project.
using DnnlDim = int64_t;
using DnnlGemmBf16 = int (*)(char transa, char transb, DnnlDim M, DnnlDim N, DnnlDim K, float alpha,
                             const uint16_t* A, DnnlDim lda, const uint16_t* B, DnnlDim ldb,
                             float beta, float* C, DnnlDim ldc);
struct DnnlVersion {
  int major, minor, patch;
  const char* hash;
  unsigned cpu_runtime, gpu_runtime;
};
using DnnlVersionFn = const DnnlVersion* (*)();

struct Dnnl {
  DnnlGemmBf16 gemm = nullptr;
  std::string description;  // library and version, or why it is missing
};

// Looked up once: the sonames of oneDNN 3 and 2, or DMIS_DNNL_LIBRARY when set (a path or name).
const Dnnl& dnnl() {
  static Dnnl d;
  static std::once_flag once;
  std::call_once(once, [] {
#if defined(__unix__)
    const char* env = std::getenv("DMIS_DNNL_LIBRARY");
    const std::string tried = env && *env ? std::string(env) : "libdnnl.so.3, libdnnl.so.2";
    const char* names[] = {env && *env ? env : "libdnnl.so.3", env && *env ? nullptr : "libdnnl.so.2"};
    for (const char* name : names) {
      if (!name) continue;
      void* h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
      if (!h) continue;
      auto gemm = reinterpret_cast<DnnlGemmBf16>(dlsym(h, "dnnl_gemm_bf16bf16f32"));
      auto version = reinterpret_cast<DnnlVersionFn>(dlsym(h, "dnnl_version"));
      if (!gemm) {
        d.description = cat(name, " has no dnnl_gemm_bf16bf16f32");
        dlclose(h);
        continue;
      }
      const DnnlVersion* v = version ? version() : nullptr;
      const std::string lib = v ? cat("oneDNN ", v->major, ".", v->minor, ".", v->patch, " (", name, ")")
                                : cat("oneDNN (", name, ")");
      // oneDNN implements it for CPUs with AVX-512 (and AMX, AVX512-BF16 where present) only;
      // elsewhere it returns unimplemented: ask once with a 1 x 1 product
      const uint16_t one = 0x3f80;  // 1.0 in bf16
      float c = 0;
      const int status = gemm('N', 'N', 1, 1, 1, 1.0f, &one, 1, &one, 1, 0.0f, &c, 1);
      if (status != 0 || c != 1.0f) {
        d.description = cat(lib, " has no bf16 GEMM for this CPU (dnnl_gemm_bf16bf16f32 returned status ",
                            status, "; it needs AVX-512)");
        return;
      }
      d.gemm = gemm;
      d.description = lib;
      return;
    }
    if (d.description.empty())
      d.description = cat("no mixed-precision GEMM: oneDNN not found (tried ", tried,
                          "; Debian: apt install libdnnl2)");
#else
    d.description = "no mixed-precision GEMM on this platform (oneDNN is loaded on Unix only)";
#endif
  });
  return d;
}
}  // namespace

GemmPrecision gemm_precision() { return precision_ref(); }

const char* gemm_precision_name(GemmPrecision p) { return p == GemmPrecision::BF16 ? "bf16" : "fp32"; }

GemmPrecision parse_gemm_precision(const std::string& s, const char* what) {
  if (s == "fp32") return GemmPrecision::FP32;
  if (s == "bf16") return GemmPrecision::BF16;
  throw InputError(cat(what, ": expected fp32 or bf16, found '", s, "'"));
}

void set_gemm_precision(GemmPrecision p, const char* what) {
  std::string why;
  if (p == GemmPrecision::BF16 && !gemm_bf16_available<Kokkos::DefaultExecutionSpace>(&why))
    throw InputError(cat(what, ": bf16 needs a mixed-precision GEMM, and ", why));
  precision_ref() = p;
}

bool cpu_has_amx_bf16() {
#if defined(__x86_64__) || defined(__i386__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  return (d >> 22) & 1u;
#else
  return false;
#endif
}

Bf16Layout bf16_layout() { return layout_ref(); }
void set_bf16_layout(Bf16Layout l) { layout_ref() = l; }
const char* bf16_layout_name(Bf16Layout l) { return l == Bf16Layout::Transposed ? "transposed" : "plain"; }
Bf16Layout parse_bf16_layout(const std::string& s, const char* what) {
  if (s == "plain") return Bf16Layout::Plain;
  if (s == "transposed") return Bf16Layout::Transposed;
  throw InputError(cat(what, ": expected plain or transposed, found '", s, "'"));
}

namespace detail {
bool host_gemm_bf16_available(std::string* why) {
  const Dnnl& d = dnnl();
  if (!d.gemm && why) *why = d.description;
  return d.gemm != nullptr;
}
std::string host_gemm_bf16_description() { return dnnl().description; }

void host_gemm_bf16(char trans_a, char trans_b, int M, int N, int K, float alpha, const bf16* A,
                    int lda, const bf16* B, int ldb, float beta, float* C, int ldc) {
  const Dnnl& d = dnnl();
  if (!d.gemm) throw InputError(cat("bf16 GEMM: ", d.description));
  static_assert(sizeof(bf16) == sizeof(uint16_t), "bf16 is 16 bits");
  const int status = d.gemm(trans_a, trans_b, M, N, K, alpha, reinterpret_cast<const uint16_t*>(A), lda,
                            reinterpret_cast<const uint16_t*>(B), ldb, beta, C, ldc);
  if (status != 0)
    throw Error(cat("bf16 GEMM (", d.description, "): dnnl_gemm_bf16bf16f32 returned status ", status,
                    " for ", trans_a, trans_b, " M ", M, " N ", N, " K ", K, " lda ", lda, " ldb ", ldb,
                    " ldc ", ldc));
}
}  // namespace detail

#if defined(KOKKOS_ENABLE_CUDA)
namespace detail {
namespace {
struct Cublas {
  cublasHandle_t handle = nullptr;
  cublasStatus_t created = CUBLAS_STATUS_NOT_INITIALIZED;
};
// One handle for the process (cuBLAS handles are costly to create: never on the hot path);
// not destroyed, since the CUDA context may already be gone when static objects are.
const Cublas& cublas() {
  static Cublas c;
  static std::once_flag once;
  std::call_once(once, [] { c.created = cublasCreate(&c.handle); });
  return c;
}
cublasOperation_t cublas_op(char t) { return t == 'T' || t == 't' ? CUBLAS_OP_T : CUBLAS_OP_N; }
}  // namespace

std::string cuda_gemm_bf16_description() {
  return cat("cuBLAS ", CUBLAS_VER_MAJOR, ".", CUBLAS_VER_MINOR, " GemmEx (bf16 inputs, fp32 compute)");
}

// Row-major C (M, N) = alpha op(A) op(B) + beta C is column-major C^T (N, M) = alpha op(B)^T
// op(A)^T + beta C^T: the same buffers and leading dimensions with A and B swapped (as Kokkos
// Kernels does for LayoutRight).
void cuda_gemm_bf16(const Kokkos::Cuda& exec, char trans_a, char trans_b, int M, int N, int K,
                    float alpha, const bf16* A, int lda, const bf16* B, int ldb, float beta, float* C,
                    int ldc) {
  const Cublas& c = cublas();
  if (c.created != CUBLAS_STATUS_SUCCESS)
    throw Error(cat("bf16 GEMM: cublasCreate failed (status ", static_cast<int>(c.created), ")"));
  cublasStatus_t status = cublasSetStream(c.handle, exec.cuda_stream());
  if (status == CUBLAS_STATUS_SUCCESS)
    status = cublasGemmEx(c.handle, cublas_op(trans_b), cublas_op(trans_a), N, M, K, &alpha, B, CUDA_R_16BF,
                          ldb, A, CUDA_R_16BF, lda, &beta, C, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F,
                          CUBLAS_GEMM_DEFAULT);
  if (status != CUBLAS_STATUS_SUCCESS)
    throw Error(cat("bf16 GEMM (cuBLAS GemmEx): status ", static_cast<int>(status), " for ", trans_a, trans_b,
                    " M ", M, " N ", N, " K ", K, " lda ", lda, " ldb ", ldb, " ldc ", ldc));
}
}  // namespace detail
#endif

}  // namespace dmis::kernels

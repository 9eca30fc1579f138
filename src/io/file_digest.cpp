#include "io/file_digest.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "core/error.hpp"
#include "core/io_error.hpp"
#include "io/fnv1a.hpp"

namespace dmis::io {

namespace {

constexpr char kMagic[] = "DMIS-DIGEST 1\n";
constexpr unsigned char kHdf5Signature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};

struct Closer {
  void operator()(std::FILE* f) const {
    if (f) std::fclose(f);
  }
};
using FilePtr = std::unique_ptr<std::FILE, Closer>;

// FNV-1a over little-endian 64-bit words of the bytes from kDigestBlock to the end
uint64_t digest_rest(std::FILE* f, const std::string& path, uint64_t& bytes) {
  if (std::fseek(f, static_cast<long>(kDigestBlock), SEEK_SET) != 0)
    throw InputError(cat("cannot read '", path, "': ", std::strerror(errno)));
  Fnv1a64 h;
  std::vector<unsigned char> buf(1 << 20);
  bytes = kDigestBlock;
  size_t carry = 0;  // bytes of a partial word left from the previous read
  for (;;) {
    const size_t n = std::fread(buf.data() + carry, 1, buf.size() - carry, f);
    const size_t have = carry + n;
    bytes += n;
    const size_t words = n == 0 ? (have + 7) / 8 : have / 8;  // at the end: pad the last word
    if (n == 0 && have % 8) std::memset(buf.data() + have, 0, 8 - have % 8);
    for (size_t i = 0; i < words; ++i) {
      uint64_t w = 0;
      for (int b = 7; b >= 0; --b) w = (w << 8) | buf[i * 8 + static_cast<size_t>(b)];
      h.mix(w);
    }
    if (n == 0) break;
    carry = have - words * 8;
    std::memmove(buf.data(), buf.data() + words * 8, carry);
  }
  if (std::ferror(f)) throw InputError(cat("cannot read '", path, "': ", std::strerror(errno)));
  return h.h;
}

std::string hex(uint64_t v) {
  char b[17];
  std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(v));
  return b;
}

}  // namespace

void write_file_digest(const std::string& path) {
  FilePtr f(std::fopen(path.c_str(), "r+b"));
  if (!f) throw InputError(cat("cannot reopen '", path, "' to write its digest: ", std::strerror(errno)));
  uint64_t bytes = 0;
  const uint64_t h = digest_rest(f.get(), path, bytes);
  std::string head = cat(kMagic, "size ", bytes, "\nfnv1a64w ", hex(h), "\n");
  head.resize(kDigestBlock, '\0');
  errno = 0;
  if (std::fseek(f.get(), 0, SEEK_SET) != 0 || std::fwrite(head.data(), 1, head.size(), f.get()) != head.size() ||
      std::fflush(f.get()) != 0)
    throw InputError(cat("cannot write the digest of '", path, "': ", write_failure_cause(path)));
  std::FILE* raw = f.release();
  if (std::fclose(raw) != 0)
    throw InputError(cat("cannot write the digest of '", path, "': ", write_failure_cause(path)));
}

FileDigest verify_file_digest(const std::string& path, const std::string& what) {
  FilePtr f(std::fopen(path.c_str(), "rb"));
  if (!f) return FileDigest::Absent;  // the caller's open names the cause
  char head[kDigestBlock + 1] = {};
  const size_t got = std::fread(head, 1, kDigestBlock, f.get());
  if (got >= 8 && std::memcmp(head, kHdf5Signature, 8) == 0) return FileDigest::Absent;
  const std::string name = cat(what, " '", path, "'");
  if (got < sizeof kMagic - 1 || std::memcmp(head, kMagic, sizeof kMagic - 1) != 0) {
    // not our header: a file with an HDF5 signature after a user block had one, now damaged
    unsigned char sig[8] = {};
    if (std::fseek(f.get(), static_cast<long>(kDigestBlock), SEEK_SET) == 0 &&
        std::fread(sig, 1, 8, f.get()) == 8 && std::memcmp(sig, kHdf5Signature, 8) == 0)
      throw InputError(cat(name, " is damaged: the digest header in its first ", kDigestBlock,
                           " bytes is overwritten"));
    return FileDigest::Absent;  // not HDF5 at all: the caller's open says so
  }
  unsigned long long size = 0;
  char want[17] = {};
  if (std::sscanf(head + sizeof kMagic - 1, "size %llu\nfnv1a64w %16[0-9a-f]\n", &size, want) != 2 ||
      std::strlen(want) != 16)
    throw InputError(cat(name, " is damaged: its digest header cannot be read"));
  // every byte of the header as written (the NUL padding included)
  std::string canonical = cat(kMagic, "size ", size, "\nfnv1a64w ", want, "\n");
  canonical.resize(kDigestBlock, '\0');
  if (got != kDigestBlock || std::memcmp(canonical.data(), head, kDigestBlock) != 0)
    throw InputError(cat(name, " is damaged: its digest header (its first ", kDigestBlock,
                         " bytes) is not as written"));
  uint64_t bytes = 0;
  const std::string have = hex(digest_rest(f.get(), path, bytes));
  if (bytes != size)
    throw InputError(cat(name, " is ", bytes < size ? "cut short" : "longer than written", ": ", bytes,
                         " bytes, ", size, " when it was written (an interrupted copy?)"));
  if (have != want)
    throw InputError(cat(name, " is damaged: its bytes do not match the digest written with them (",
                         have, " against ", want, ")"));
  return FileDigest::Verified;
}

}  // namespace dmis::io

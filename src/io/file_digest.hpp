#pragma once
// A digest of a whole file's bytes, kept in the file's first 512 bytes (an HDF5 "user block",
// which HDF5 reserves and skips: the file stays an ordinary HDF5 file for h5py and h5dump).
// Checkpoints and EMA snapshots carry one: any damaged byte (a flip, a zeroed range, a cut)
// is found before HDF5 parses the file, so a damaged file can neither crash nor hang the
// library, nor be read with exit 0.
//
// Header layout (ASCII, NUL-padded to 512 bytes):
//   "DMIS-DIGEST 1\n" "size <bytes of the whole file>\n" "fnv1a64w <16 hex digits>\n"
// fnv1a64w: FNV-1a over the bytes from offset 512 to the end, taken as little-endian 64-bit
// words (a last partial word zero-padded): h = 14695981039346656037; for each word w:
// h ^= w; h *= 1099511628211 (mod 2^64). tests/hostile/resign.py writes the same header.
#include <cstdint>
#include <string>

namespace dmis::io {

constexpr size_t kDigestBlock = 512;

/// Writes the header into a file made with a 512-byte user block (the digest of the rest).
/// Throws naming the file when it cannot (then the file must not be renamed into place).
void write_file_digest(const std::string& path);

enum class FileDigest {
  Absent,   // a plain HDF5 file (the HDF5 signature at offset 0): written before digests
  Verified  // the header is there and the bytes match it
};

/// Checks a file's digest before anything parses it. Absent for a plain HDF5 file (or one
/// that cannot be opened: the caller's open reports that); throws InputError naming the file
/// when the header or the bytes are damaged, or the file is cut short. `what` names the kind
/// of file in the message ("checkpoint").
FileDigest verify_file_digest(const std::string& path, const std::string& what);

}  // namespace dmis::io

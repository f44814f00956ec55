// SHA-256 of a whole file, read and hashed on the calling thread (pure C++ and OpenSSL, no N-API): what seals a
// completed scan's raw lines (src/storage/integrity.ts). The binding runs it on a libuv pool thread.
#pragma once

#include <string>

namespace scanline {

struct FileDigest {
  // False when the file does not exist (ENOENT); `hex` is then empty.
  bool found = false;
  // 64 lowercase hex characters.
  std::string hex;
};

// Reads `path` to its end in 1 MiB blocks and returns its SHA-256. Throws StitchError(SCANLINE_ERR_STORAGE_READ) with
// the errno text when it cannot be opened (other than ENOENT) or read, when it is not a regular file (a FIFO or a
// device would hold the thread), or when OpenSSL fails. Thread-safe: no state outside the call.
FileDigest Sha256File(const std::string& path);

}  // namespace scanline

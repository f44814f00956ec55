#include "file_digest.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <system_error>
#include <vector>

#include "config.h"

namespace scanline {

namespace {

// std::generic_category().message, not strerror: this runs on libuv pool threads, and strerror need not be
// thread-safe.
[[noreturn]] void ReadFailed(const std::string& what, const std::string& path, int err) {
  throw StitchError(code::kStorageRead, what + " " + path + ": " + std::generic_category().message(err));
}

// Closes the descriptor on every path out (a throw included).
struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

struct DigestContext {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};

}  // namespace

FileDigest Sha256File(const std::string& path) {
  FileDigest out;
  // O_NONBLOCK: a FIFO put where a raw file was must not hold a pool thread in open(); it is refused below, as is
  // anything else that is not a regular file (a device such as /dev/zero would never reach its end).
  Fd file{open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK)};
  if (file.fd < 0) {
    const int err = errno;
    if (err == ENOENT) return out;
    ReadFailed("cannot open", path, err);
  }
  struct stat st {};
  if (fstat(file.fd, &st) != 0) {
    const int err = errno;
    ReadFailed("cannot stat", path, err);
  }
  if (!S_ISREG(st.st_mode)) {
    throw StitchError(code::kStorageRead, "cannot read " + path + ": not a regular file");
  }
#if defined(POSIX_FADV_SEQUENTIAL)
  posix_fadvise(file.fd, 0, 0, POSIX_FADV_SEQUENTIAL);  // a hint: read-ahead for one pass; failure changes nothing
#endif
  std::unique_ptr<EVP_MD_CTX, DigestContext> ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    throw StitchError(code::kStorageRead, "SHA-256 of " + path + ": OpenSSL could not start a digest");
  }
  std::vector<unsigned char> block(1 << 20);
  for (;;) {
    const ssize_t n = read(file.fd, block.data(), block.size());
    if (n < 0) {
      const int err = errno;
      if (err == EINTR) continue;
      ReadFailed("cannot read", path, err);
    }
    if (n == 0) break;
    if (EVP_DigestUpdate(ctx.get(), block.data(), static_cast<size_t>(n)) != 1) {
      throw StitchError(code::kStorageRead, "SHA-256 of " + path + ": OpenSSL digest update failed");
    }
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(ctx.get(), digest, &length) != 1 || length != 32) {
    throw StitchError(code::kStorageRead, "SHA-256 of " + path + ": OpenSSL digest final failed");
  }
  static const char kHex[] = "0123456789abcdef";
  out.hex.resize(2 * length);
  for (unsigned int i = 0; i < length; ++i) {
    out.hex[2 * i] = kHex[digest[i] >> 4];
    out.hex[2 * i + 1] = kHex[digest[i] & 15];
  }
  out.found = true;
  return out;
}

}  // namespace scanline

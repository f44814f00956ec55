// Module init of scanline_native. Context-aware (Napi::Addon: per-environment instance data; the only process-wide
// state is the CPU feature check), so it loads in the main thread and in any number of worker threads at once.
//
// Exports: Stitcher (class, see stitcher_binding.h), extractPlane(src, lines, energies, pixels, energy, out),
// alignedBuffer(byteLength, alignment), copyRows(dst, dstStart, dstStride, src, srcStart, srcStride, rowWords, rows),
// packRgbRows(the same arguments, dst a Uint8Array of RGB pixels), setThreadIdleScheduling(), sha256File(path),
// kernelIsa ("avx2" or "baseline": which build of the hot loops this CPU runs).
#include <napi.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

#if defined(__linux__)
#include <sched.h>
#endif

#include "calibration.h"
#include "config.h"
#include "extract_plane.h"
#include "file_digest.h"
#include "row_runs.h"
#include "stitcher_binding.h"

namespace scanline {

// One sha256File() job. Execute reads and hashes the file on a libuv pool thread and never touches JS; the result or
// the failure travels back as data and settles the promise on the JS thread.
class FileDigestWorker : public Napi::AsyncWorker {
 public:
  FileDigestWorker(Napi::Env env, std::string path)
      : Napi::AsyncWorker(env, "scanline.storage.sha256File"),
        path_(std::move(path)),
        deferred_(Napi::Promise::Deferred::New(env)) {}

  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override {
    try {
      digest_ = Sha256File(path_);
    } catch (const StitchError& e) {
      Fail(e.code, e.what());
    } catch (const std::bad_alloc&) {
      Fail(code::kStorageRead, "out of memory");
    } catch (const std::exception& e) {
      Fail(code::kStorageRead, e.what());
    } catch (...) {
      Fail(code::kStorageRead, "unknown native failure");
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (failed_) {
      deferred_.Reject(CodedError(env, error_code_, message_).Value());
    } else if (!digest_.found) {
      deferred_.Resolve(env.Null());
    } else {
      deferred_.Resolve(Napi::String::New(env, digest_.hex));
    }
  }

  // Not reached today (Execute reports failures as data, never through SetError); kept so that a SetError added
  // later rejects the promise instead of leaving it pending.
  void OnError(const Napi::Error& error) override {
    deferred_.Reject(CodedError(Env(), code::kStorageRead, error.Message()).Value());
  }

 private:
  void Fail(const char* error_code, const std::string& message) {
    failed_ = true;
    error_code_ = error_code;
    message_ = message;
  }

  std::string path_;
  Napi::Promise::Deferred deferred_;
  FileDigest digest_;
  bool failed_ = false;
  const char* error_code_ = code::kStorageRead;
  std::string message_;
};

class ScanlineAddon : public Napi::Addon<ScanlineAddon> {
 public:
  ScanlineAddon(Napi::Env env, Napi::Object exports) {
    DefineAddon(exports, {
                             InstanceValue("Stitcher", StitcherBinding::Init(env), napi_enumerable),
                             InstanceMethod("extractPlane", &ScanlineAddon::ExtractPlaneJs, napi_enumerable),
                             InstanceMethod("alignedBuffer", &ScanlineAddon::AlignedBufferJs, napi_enumerable),
                             InstanceMethod("copyRows", &ScanlineAddon::CopyRowsJs, napi_enumerable),
                             InstanceMethod("packRgbRows", &ScanlineAddon::PackRgbRowsJs, napi_enumerable),
                             InstanceMethod("setThreadIdleScheduling", &ScanlineAddon::SetThreadIdleSchedulingJs,
                                            napi_enumerable),
                             InstanceMethod("sha256File", &ScanlineAddon::Sha256FileJs, napi_enumerable),
                             InstanceValue("kernelIsa", Napi::String::New(env, KernelIsa()), napi_enumerable),
                         });
  }

 private:
  // alignedBuffer(byteLength, alignment): ArrayBuffer whose memory starts on an `alignment` boundary, zero-filled.
  // Why: O_DIRECT file writes (the raw archive) need the memory address, file offset and length aligned to the
  // device's logical block size, and a JS-allocated ArrayBuffer gives no alignment guarantee. The memory is freed
  // when the ArrayBuffer is garbage-collected and counted as external memory meanwhile, so V8 sees its size.
  Napi::Value AlignedBufferJs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const int64_t length = ToInteger(info[0], "byteLength", code::kStorageWrite);
    const int64_t alignment = ToInteger(info[1], "alignment", code::kStorageWrite);
    if (length < 1 || length > (int64_t{1} << 30) || alignment < 64 || alignment > 65536 ||
        (alignment & (alignment - 1)) != 0) {
      throw CodedError(env, code::kStorageWrite,
                       "alignedBuffer: expected 1 <= byteLength <= 2^30 and a power-of-two alignment 64..65536");
    }
    // aligned_alloc wants a size that is a multiple of the alignment; the ArrayBuffer exposes only `length`.
    const size_t rounded = (static_cast<size_t>(length) + alignment - 1) / alignment * alignment;
#ifdef _WIN32
    void* data = _aligned_malloc(rounded, static_cast<size_t>(alignment));
#else
    void* data = std::aligned_alloc(static_cast<size_t>(alignment), rounded);
#endif
    if (data == nullptr) {
      throw CodedError(env, code::kStorageWrite, "alignedBuffer: out of memory for " + std::to_string(length) + " bytes");
    }
    std::memset(data, 0, rounded);
    Napi::MemoryManagement::AdjustExternalMemory(env, static_cast<int64_t>(rounded));
    auto* size_hint = new int64_t(static_cast<int64_t>(rounded));
    return Napi::ArrayBuffer::New(
        env, data, static_cast<size_t>(length),
        [](Napi::Env finalize_env, void* memory, int64_t* bytes) {
#ifdef _WIN32
          _aligned_free(memory);
#else
          std::free(memory);
#endif
          Napi::MemoryManagement::AdjustExternalMemory(finalize_env, -*bytes);
          delete bytes;
        },
        size_hint);
  }

  // Reads arguments 1, 2 and 4..7 of copyRows / packRgbRows (the runs) and checks them (row_runs.h).
  static RowRuns ReadRowRuns(const Napi::CallbackInfo& info, const char* fn, int64_t dst_elements, int64_t src_elements,
                             bool shared_buffer, const char* unit) {
    RowRuns r{ToInteger(info[1], "dstStart", code::kStitchBuffer),   ToInteger(info[2], "dstStride", code::kStitchBuffer),
              ToInteger(info[4], "srcStart", code::kStitchBuffer),   ToInteger(info[5], "srcStride", code::kStitchBuffer),
              ToInteger(info[6], "rowWords", code::kStitchBuffer),   ToInteger(info[7], "rows", code::kStitchBuffer)};
    Guard(info.Env(), [&] { CheckRowRuns(r, fn, dst_elements, src_elements, shared_buffer, unit); });
    return r;
  }

  // True when both views are of one ArrayBuffer (empty buffers may have no memory at all: never the same then).
  static bool SameBuffer(const Napi::TypedArray& a, const Napi::TypedArray& b) {
    const void* data = a.ArrayBuffer().Data();
    return data != nullptr && data == b.ArrayBuffer().Data();
  }

  // copyRows(dst: Uint32Array, dstStart, dstStride, src: Uint32Array, srcStart, srcStride, rowWords, rows): void.
  // Copies `rows` runs of `rowWords` 32-bit words, run r from src[srcStart + r * srcStride] to
  // dst[dstStart + r * dstStride] (element indices). Why native: the operator preview canvas places every strip of
  // every live scan this way on the JS thread, and a JS word loop (or a subarray + set() per row) is memory-bound on
  // the strided rows and several times slower than a memcpy per row (bench/RESULTS.md, 'Preview canvas'). Bounds are
  // checked up front; src and dst must not share a buffer (runs could overlap in an order-dependent way).
  Napi::Value CopyRowsJs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto dst = TypedArrayArg<Napi::Uint32Array>(info[0], napi_uint32_array, "a Uint32Array", "dst");
    auto src = TypedArrayArg<Napi::Uint32Array>(info[3], napi_uint32_array, "a Uint32Array", "src");
    const RowRuns r = ReadRowRuns(info, "copyRows", static_cast<int64_t>(dst.ElementLength()),
                                  static_cast<int64_t>(src.ElementLength()), SameBuffer(dst, src), "words");
    CopyRows(dst.Data(), src.Data(), r);
    return env.Undefined();
  }

  // packRgbRows(dst: Uint8Array, dstStart, dstStride, src: Uint32Array, srcStart, srcStride, rowWords, rows): void.
  // copyRows into packed 8-bit RGB: each source word (RGBA in memory order, as the stitcher's preview strips) becomes
  // its first three bytes; dst indices and strides count pixels of 3 bytes, and dst holds floor(byteLength / 3).
  // Why: libvips spends more CPU making a PNG from RGBA with removeAlpha() than from RGB
  // (bench/RESULTS.md, 'Preview PNGs from packed RGB'), and the canvas copies its blocks into one image for the
  // encoder anyway.
  Napi::Value PackRgbRowsJs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto dst = TypedArrayArg<Napi::Uint8Array>(info[0], napi_uint8_array, "a Uint8Array", "dst");
    auto src = TypedArrayArg<Napi::Uint32Array>(info[3], napi_uint32_array, "a Uint32Array", "src");
    const RowRuns r = ReadRowRuns(info, "packRgbRows", static_cast<int64_t>(dst.ByteLength() / 3),
                                  static_cast<int64_t>(src.ElementLength()), SameBuffer(dst, src), "pixels");
    PackRgbRows(dst.Data(), src.Data(), r);
    return env.Undefined();
  }

  // setThreadIdleScheduling(): true once the calling thread runs under SCHED_IDLE (Linux), false where the platform
  // has no such policy; a refusal by the kernel throws SCANLINE_ERR_INFER_WORKER_START with its errno text. Threads
  // the caller creates afterwards inherit the policy (pthreads' default). Why: an inference worker under SCHED_IDLE
  // gets a CPU only when no normal thread wants one, so the event loop never waits for it to be preempted; under
  // nice 10 it waited up to a scheduler slice, in the event-loop delay tail
  // (bench/RESULTS.md, 'Inference workers under SCHED_IDLE').
  Napi::Value SetThreadIdleSchedulingJs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
#if defined(__linux__) && defined(SCHED_IDLE)
    sched_param param{};
    param.sched_priority = 0;
    if (sched_setscheduler(0, SCHED_IDLE, &param) != 0) {
      const int err = errno;
      throw CodedError(env, code::kInferWorkerStart, std::string("sched_setscheduler(SCHED_IDLE) failed: ") + std::strerror(err));
    }
    return Napi::Boolean::New(env, true);
#else
    return Napi::Boolean::New(env, false);
#endif
  }

  // sha256File(path: string): Promise<string | null>: the SHA-256 (lowercase hex) of the regular file at `path`, read
  // and hashed on a libuv pool thread; null when it does not exist; rejects with SCANLINE_ERR_STORAGE_READ when it
  // cannot be read, is not a regular file, or `path` is not a non-empty string without NUL characters (never throws).
  // Why native: sealing every completed scan streamed its raw file (tens of MB) through node:crypto on the JS thread:
  // event-loop delay p99 at 32 real-time portals 6.9-8.6 ms, 1.9 ms with the digest skipped, 2.7-4.6 ms with this
  // (bench/RESULTS.md, 'Sealing scans off the event loop').
  Napi::Value Sha256FileJs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string path;
    std::string refused;
    if (!info[0].IsString()) {
      refused = "Expected a path string for path but received a value that is not a string";
    } else {
      path = info[0].As<Napi::String>().Utf8Value();
      // open() would stop at an embedded NUL and hash another file.
      if (path.empty() || path.find('\0') != std::string::npos) {
        refused = "Expected a non-empty path without NUL characters for path but received a string of " +
                  std::to_string(path.size()) + " bytes" + (path.empty() ? "" : " with a NUL");
      }
    }
    if (!refused.empty()) {
      auto deferred = Napi::Promise::Deferred::New(env);
      deferred.Reject(CodedError(env, code::kStorageRead, "sha256File: " + refused).Value());
      return deferred.Promise();
    }
    auto* worker = new FileDigestWorker(env, std::move(path));
    Napi::Promise promise = worker->Promise();
    worker->Queue();  // the worker deletes itself once settled
    return promise;
  }

  // extractPlane(src: Uint16Array, lines, energies, pixels, energy, out: Uint16Array): void
  Napi::Value ExtractPlaneJs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto u16 = [&](size_t i, const char* name) {
      return TypedArrayArg<Napi::Uint16Array>(info[i], napi_uint16_array, "a Uint16Array", name);
    };
    Napi::Uint16Array src = u16(0, "src");
    const int64_t lines = ToInteger(info[1], "lines", code::kSliceGeometry);
    const int64_t energies = ToInteger(info[2], "energies", code::kSliceGeometry);
    const int64_t pixels = ToInteger(info[3], "pixels", code::kSliceGeometry);
    const int64_t energy = ToInteger(info[4], "energy", code::kSliceGeometry);
    Napi::Uint16Array out = u16(5, "out");
    Guard(env, [&] { CheckExtractPlane(lines, energies, pixels, energy, src.ElementLength(), out.ElementLength()); });
    ExtractPlane(src.Data(), lines, static_cast<int>(energies), static_cast<int>(pixels), static_cast<int>(energy),
                 out.Data());
    return env.Undefined();
  }
};

}  // namespace scanline

using scanline::ScanlineAddon;
NODE_API_ADDON(ScanlineAddon)

// Module init of scanline_native. Context-aware (Napi::Addon: per-environment instance data; the only process-wide
// state is the CPU feature check), so it loads in the main thread and in any number of worker threads at once.
//
// Exports: Stitcher (class, see stitcher_binding.h), extractPlane(src, lines, energies, pixels, energy, out),
// alignedBuffer(byteLength, alignment), copyRows(dst, dstStart, dstStride, src, srcStart, srcStride, rowWords, rows),
// setThreadIdleScheduling(), kernelIsa ("avx2" or "baseline": which build of the hot loops this CPU runs).
#include <napi.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#if defined(__linux__)
#include <sched.h>
#endif

#include "calibration.h"
#include "config.h"
#include "extract_plane.h"
#include "stitcher_binding.h"

namespace scanline {

class ScanlineAddon : public Napi::Addon<ScanlineAddon> {
 public:
  ScanlineAddon(Napi::Env env, Napi::Object exports) {
    DefineAddon(exports, {
                             InstanceValue("Stitcher", StitcherBinding::Init(env), napi_enumerable),
                             InstanceMethod("extractPlane", &ScanlineAddon::ExtractPlaneJs, napi_enumerable),
                             InstanceMethod("alignedBuffer", &ScanlineAddon::AlignedBufferJs, napi_enumerable),
                             InstanceMethod("copyRows", &ScanlineAddon::CopyRowsJs, napi_enumerable),
                             InstanceMethod("setThreadIdleScheduling", &ScanlineAddon::SetThreadIdleSchedulingJs,
                                            napi_enumerable),
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

  // copyRows(dst: Uint32Array, dstStart, dstStride, src: Uint32Array, srcStart, srcStride, rowWords, rows): void.
  // Copies `rows` runs of `rowWords` 32-bit words, run r from src[srcStart + r * srcStride] to
  // dst[dstStart + r * dstStride] (element indices). Why native: the operator preview canvas places every strip of
  // every live scan this way on the JS thread, and a JS word loop (or a subarray + set() per row) ran at ~2.3 ns per
  // word against ~0.6 for memcpy per row (8 live 1024-px scans, 64-column strips). Bounds are checked up front;
  // src and dst must not share a buffer (runs could overlap in an order-dependent way).
  Napi::Value CopyRowsJs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto u32 = [&](size_t i, const char* name) {
      return TypedArrayArg<Napi::Uint32Array>(info[i], napi_uint32_array, "a Uint32Array", name);
    };
    Napi::Uint32Array dst = u32(0, "dst");
    const int64_t dst_start = ToInteger(info[1], "dstStart", code::kStitchBuffer);
    const int64_t dst_stride = ToInteger(info[2], "dstStride", code::kStitchBuffer);
    Napi::Uint32Array src = u32(3, "src");
    const int64_t src_start = ToInteger(info[4], "srcStart", code::kStitchBuffer);
    const int64_t src_stride = ToInteger(info[5], "srcStride", code::kStitchBuffer);
    const int64_t row_words = ToInteger(info[6], "rowWords", code::kStitchBuffer);
    const int64_t rows = ToInteger(info[7], "rows", code::kStitchBuffer);
    if (dst_start < 0 || src_start < 0 || row_words < 0 || rows < 0 || dst_stride < row_words || src_stride < row_words) {
      throw CodedError(env, code::kStitchBuffer,
                       "copyRows: expected non-negative starts, rowWords and rows, and strides >= rowWords");
    }
    if (rows == 0 || row_words == 0) return env.Undefined();
    if (dst.ArrayBuffer().Data() == src.ArrayBuffer().Data()) {
      throw CodedError(env, code::kStitchBuffer, "copyRows: src and dst share one buffer");
    }
    // Last word touched, as int64 (no overflow: lengths are below 2^32 elements and rows * stride is checked below).
    const auto last = [&](int64_t start, int64_t stride) -> int64_t {
      if (stride > 0 && rows - 1 > (INT64_MAX - start - row_words) / stride) return INT64_MAX;
      return start + (rows - 1) * stride + row_words;
    };
    if (last(dst_start, dst_stride) > static_cast<int64_t>(dst.ElementLength()) ||
        last(src_start, src_stride) > static_cast<int64_t>(src.ElementLength())) {
      throw CodedError(env, code::kStitchBuffer,
                       "copyRows: " + std::to_string(rows) + " rows of " + std::to_string(row_words) +
                           " words reach beyond dst (" + std::to_string(dst.ElementLength()) + " words) or src (" +
                           std::to_string(src.ElementLength()) + " words)");
    }
    uint32_t* d = dst.Data() + dst_start;
    const uint32_t* s = src.Data() + src_start;
    const size_t bytes = static_cast<size_t>(row_words) * sizeof(uint32_t);
    for (int64_t r = 0; r < rows; ++r) std::memmove(d + r * dst_stride, s + r * src_stride, bytes);
    return env.Undefined();
  }

  // setThreadIdleScheduling(): true once the calling thread runs under SCHED_IDLE (Linux), false where the platform
  // has no such policy; a refusal by the kernel throws SCANLINE_ERR_INFER_WORKER_START with its errno text. Threads
  // the caller creates afterwards inherit the policy (pthreads' default). Why: an inference worker under SCHED_IDLE
  // gets a CPU only when no normal thread wants one, so the event loop never waits for it to be preempted; under
  // nice 10 it waited up to a scheduler slice (ELD p99 at 32 portals 4.8 -> 4.0 ms, bench/RESULTS.md).
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
    if (lines < 0 || pixels < 1 || pixels > 65536 || energies < 1 || energies > 2 || energy < 0 ||
        energy >= energies) {
      throw CodedError(env, code::kSliceGeometry,
                       "extractPlane: expected lines >= 0, pixels >= 1, energies 1..2 and energy < energies");
    }
    const size_t need_src = static_cast<size_t>(lines) * energies * pixels;
    const size_t need_out = static_cast<size_t>(lines) * pixels;
    if (src.ElementLength() < need_src || out.ElementLength() < need_out) {
      throw CodedError(env, code::kStitchBuffer,
                       "extractPlane: src needs " + std::to_string(need_src) + " samples and out " +
                           std::to_string(need_out) + "; received " + std::to_string(src.ElementLength()) + " and " +
                           std::to_string(out.ElementLength()));
    }
    ExtractPlane(src.Data(), lines, static_cast<int>(energies), static_cast<int>(pixels), static_cast<int>(energy),
                 out.Data());
    return env.Undefined();
  }
};

}  // namespace scanline

using scanline::ScanlineAddon;
NODE_API_ADDON(ScanlineAddon)

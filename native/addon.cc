// Module init of scanline_native. Context-aware (Napi::Addon: per-environment instance data; the only process-wide
// state is the CPU feature check), so it loads in the main thread and in any number of worker threads at once.
//
// Exports: Stitcher (class, see stitcher_binding.h), extractPlane(src, lines, energies, pixels, energy, out),
// alignedBuffer(byteLength, alignment), kernelIsa ("avx2" or "baseline": which build of the hot loops this CPU runs).
#include <napi.h>

#include <cstdlib>
#include <cstring>
#include <string>

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

  // extractPlane(src: Uint16Array, lines, energies, pixels, energy, out: Uint16Array): void
  Napi::Value ExtractPlaneJs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto u16 = [&](size_t i, const char* name) {
      if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_uint16_array) {
        throw CodedError(env, code::kStitchBuffer, std::string("Expected a Uint16Array for ") + name);
      }
      return info[i].As<Napi::Uint16Array>();
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

// The N-API face of the stitcher: a JS class over scanline::Stitcher and the AsyncWorker that runs process() jobs.
// Errors leave as JS Error objects whose `code` property is a SCANLINE_ERR_* string (src/stitch/native-stitcher.ts
// turns them into ScanlineError). C++ exceptions are enabled (NAPI_CPP_EXCEPTIONS).
#pragma once

#include <napi.h>

#include <exception>
#include <memory>
#include <new>
#include <string>

#include "stitcher.h"

namespace scanline {

Napi::Error CodedError(Napi::Env env, const char* error_code, const std::string& message);

// Runs `body`, turning core errors (StitchError, bad_alloc, other std::exception) into coded JS errors.
template <typename F>
auto Guard(Napi::Env env, F&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (const StitchError& e) {
    throw CodedError(env, e.code, e.what());
  } catch (const std::bad_alloc&) {
    throw CodedError(env, code::kStitchFailed, "out of memory");
  } catch (const std::exception& e) {
    throw CodedError(env, code::kStitchFailed, e.what());
  }
}

// Reads an integral JS number; anything else throws `error_code` with "Expected an integer for <name> ...".
int64_t ToInteger(const Napi::Value& value, const char* name, const char* error_code);

// Throws SCANLINE_ERR_STITCH_BUFFER ("Expected <expected> for <name> but received ...") unless `value` is a typed
// array of `type`.
void CheckTypedArray(const Napi::Value& value, napi_typedarray_type type, const char* expected, const char* name);

// `value` as a typed array of `type` (T: Napi::Uint16Array, ...), checked by CheckTypedArray.
template <typename T>
T TypedArrayArg(const Napi::Value& value, napi_typedarray_type type, const char* expected, const char* name) {
  CheckTypedArray(value, type, expected, name);
  return value.As<T>();
}

class StitcherBinding : public Napi::ObjectWrap<StitcherBinding> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit StitcherBinding(const Napi::CallbackInfo& info);

  // JS thread, from the worker once a job's result was built: ends the job and runs a deferred close().
  void JobFinished();

 private:
  Stitcher& Core();  // throws SCANLINE_ERR_STITCH_CLOSED after close()

  Napi::Value Push(const Napi::CallbackInfo& info);
  Napi::Value Process(const Napi::CallbackInfo& info);
  Napi::Value Finish(const Napi::CallbackInfo& info);
  Napi::Value ReadRaw(const Napi::CallbackInfo& info);
  Napi::Value MissingRanges(const Napi::CallbackInfo& info);
  Napi::Value ReadAttenuation(const Napi::CallbackInfo& info);
  Napi::Value ReadMaterial(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value GetTileFloats(const Napi::CallbackInfo& info);
  Napi::Value GetPreviewBytes(const Napi::CallbackInfo& info);

  std::unique_ptr<Stitcher> core_;
  bool closed_ = false;
  size_t tile_floats_ = 0;
  size_t preview_bytes_ = 0;
};

}  // namespace scanline

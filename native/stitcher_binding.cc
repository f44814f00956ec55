#include "stitcher_binding.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <new>

namespace scanline {

Napi::Error CodedError(Napi::Env env, const char* error_code, const std::string& message) {
  Napi::Error error = Napi::Error::New(env, message);
  error.Value().Set("code", Napi::String::New(env, error_code));
  return error;
}

namespace {

std::string Describe(const Napi::Value& value) {
  if (value.IsNumber()) {
    const double v = value.As<Napi::Number>().DoubleValue();
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return std::string(buf) + " of type number";
  }
  if (value.IsUndefined()) return "undefined of type undefined";
  if (value.IsNull()) return "null of type object";
  if (value.IsString()) return "\"" + value.As<Napi::String>().Utf8Value() + "\" of type string";
  if (value.IsTypedArray()) return "a typed array of type object";
  if (value.IsBoolean()) return std::string(value.As<Napi::Boolean>().Value() ? "true" : "false") + " of type boolean";
  return "a value of type " + std::string(value.IsFunction() ? "function" : "object");
}

double NumberProperty(const Napi::Object& object, const char* name) {
  Napi::Value v = object.Get(name);
  if (!v.IsNumber()) {
    throw CodedError(object.Env(), code::kStitchOptions,
                     std::string("Expected a number for ") + name + " but received " + Describe(v) +
                         " (validate options with validateStitcherOptions)");
  }
  return v.As<Napi::Number>().DoubleValue();
}

Napi::Object ObjectProperty(const Napi::Object& object, const char* name) {
  Napi::Value v = object.Get(name);
  if (!v.IsObject()) {
    throw CodedError(object.Env(), code::kStitchOptions,
                     std::string("Expected an object for ") + name + " but received " + Describe(v));
  }
  return v.As<Napi::Object>();
}

StitcherConfig ReadConfig(const Napi::Value& value) {
  if (!value.IsObject()) {
    throw CodedError(value.Env(), code::kStitchOptions, "Expected an options object but received " + Describe(value));
  }
  const Napi::Object o = value.As<Napi::Object>();
  StitcherConfig c;
  c.pixels = static_cast<int>(NumberProperty(o, "pixels"));
  c.energies = static_cast<int>(NumberProperty(o, "energies"));
  c.max_lines = static_cast<int64_t>(NumberProperty(o, "maxLines"));
  c.chunk_lines = static_cast<int>(NumberProperty(o, "chunkLines"));
  c.reorder_window_lines = static_cast<int64_t>(NumberProperty(o, "reorderWindowLines"));
  c.air_lines = static_cast<int>(NumberProperty(o, "airLines"));
  c.dead_pixel_fraction = NumberProperty(o, "deadPixelFraction");
  c.attenuation_max = NumberProperty(o, "attenuationMax");
  c.max_lines_per_job = static_cast<int>(NumberProperty(o, "maxLinesPerJob"));
  c.preview_downsample = static_cast<int>(NumberProperty(o, "previewDownsample"));
  const Napi::Object m = ObjectProperty(o, "material");
  c.material.min_attenuation = NumberProperty(m, "minAttenuation");
  c.material.max_attenuation = NumberProperty(m, "maxAttenuation");
  Napi::Value thresholds = m.Get("ratioThresholds");
  if (!thresholds.IsArray() || thresholds.As<Napi::Array>().Length() != 3) {
    throw CodedError(value.Env(), code::kStitchOptions,
                     "Expected an array of 3 numbers for material.ratioThresholds but received " + Describe(thresholds));
  }
  const Napi::Object t = thresholds.As<Napi::Object>();
  for (uint32_t i = 0; i < 3; ++i) {
    Napi::Value v = t.Get(i);
    if (!v.IsNumber()) {
      throw CodedError(value.Env(), code::kStitchOptions, "Expected numbers in material.ratioThresholds");
    }
    c.material.ratio_thresholds[i] = v.As<Napi::Number>().DoubleValue();
  }
  const Napi::Object tile = ObjectProperty(o, "tile");
  c.tile.size = static_cast<int>(NumberProperty(tile, "size"));
  c.tile.downsample = static_cast<int>(NumberProperty(tile, "downsample"));
  c.tile.stride_lines = static_cast<int>(NumberProperty(tile, "strideLines"));
  c.tile.overlap_pixels = static_cast<int>(NumberProperty(tile, "overlapPixels"));
  return c;
}

Napi::Array Pair(Napi::Env env, int64_t a, int64_t b) {
  Napi::Array pair = Napi::Array::New(env, 2);
  pair.Set(uint32_t{0}, Napi::Number::New(env, static_cast<double>(a)));
  pair.Set(uint32_t{1}, Napi::Number::New(env, static_cast<double>(b)));
  return pair;
}

Napi::Object JobResult(Napi::Env env, const Job& job, int64_t frontier) {
  Napi::Object result = Napi::Object::New(env);
  result.Set("calibrated", Pair(env, job.start, job.end));
  result.Set("frontier", Napi::Number::New(env, static_cast<double>(frontier)));
  Napi::Array gaps = Napi::Array::New(env, job.gaps.size());
  for (size_t i = 0; i < job.gaps.size(); ++i) {
    gaps.Set(static_cast<uint32_t>(i), Pair(env, job.gaps[i].first, job.gaps[i].second));
  }
  result.Set("gaps", gaps);
  Napi::Array tiles = Napi::Array::New(env, job.tiles.size());
  for (size_t i = 0; i < job.tiles.size(); ++i) {
    const TileInfo& t = job.tiles[i];
    Napi::Object info = Napi::Object::New(env);
    info.Set("slot", Napi::Number::New(env, t.slot));
    info.Set("line", Napi::Number::New(env, static_cast<double>(t.line)));
    info.Set("pixel", Napi::Number::New(env, t.pixel));
    info.Set("lines", Napi::Number::New(env, static_cast<double>(t.lines)));
    info.Set("pixels", Napi::Number::New(env, t.pixels));
    tiles.Set(static_cast<uint32_t>(i), info);
  }
  result.Set("tiles", tiles);
  if (job.has_preview) {
    Napi::Object preview = Napi::Object::New(env);
    preview.Set("line", Napi::Number::New(env, static_cast<double>(job.preview.line)));
    preview.Set("lines", Napi::Number::New(env, static_cast<double>(job.preview.lines)));
    preview.Set("width", Napi::Number::New(env, job.preview.width));
    preview.Set("height", Napi::Number::New(env, job.preview.height));
    result.Set("preview", preview);
  } else {
    result.Set("preview", env.Null());
  }
  result.Set("more", Napi::Boolean::New(env, job.more));
  result.Set("done", Napi::Boolean::New(env, job.done));
  return result;
}

// One process() job. Execute runs on a libuv pool thread and never touches JS; failures travel back as data and
// reject the promise on the JS thread. The receiver (the stitcher object) and the caller's typed arrays are held
// by references until OnOK/OnError, so neither can be collected while the worker writes into them.
class ProcessWorker : public Napi::AsyncWorker {
 public:
  ProcessWorker(const Napi::Object& self, StitcherBinding* owner, Stitcher* core, const Job* job,
                const Napi::Float32Array& tiles, const Napi::Uint8Array& preview)
      : Napi::AsyncWorker(self.Env(), "scanline.stitch.process"),
        self_(Napi::Persistent(self)),
        owner_(owner),
        core_(core),
        job_(job),
        deferred_(Napi::Promise::Deferred::New(self.Env())),
        tiles_(Napi::Persistent(tiles)),
        preview_(Napi::Persistent(preview)) {}

  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override {
    try {
      core_->ExecuteJob();
    } catch (const StitchError& e) {
      Fail(e.code, e.what());
    } catch (const std::bad_alloc&) {
      Fail(code::kStitchFailed, "out of memory");
    } catch (const std::exception& e) {
      Fail(code::kStitchFailed, e.what());
    } catch (...) {
      Fail(code::kStitchFailed, "unknown native failure");
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (failed_) {
      owner_->JobFinished();
      deferred_.Reject(CodedError(env, error_code_, message_).Value());
      return;
    }
    Napi::Object result = JobResult(env, *job_, job_->end);
    owner_->JobFinished();  // may free the core (deferred close): nothing of it is read after this
    deferred_.Resolve(result);
  }

  void OnError(const Napi::Error& error) override {
    owner_->JobFinished();
    deferred_.Reject(CodedError(Env(), code::kStitchFailed, error.Message()).Value());
  }

 private:
  void Fail(const char* error_code, const std::string& message) {
    failed_ = true;
    error_code_ = error_code;
    message_ = message;
  }

  Napi::ObjectReference self_;  // keeps the stitcher (and so owner_ and core_) alive while the job runs
  StitcherBinding* owner_;
  Stitcher* core_;
  const Job* job_;
  Napi::Promise::Deferred deferred_;
  Napi::Reference<Napi::Float32Array> tiles_;
  Napi::Reference<Napi::Uint8Array> preview_;
  bool failed_ = false;
  const char* error_code_ = code::kStitchFailed;
  std::string message_;
};

}  // namespace

void CheckTypedArray(const Napi::Value& value, napi_typedarray_type type, const char* expected, const char* name) {
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != type) {
    throw CodedError(value.Env(), code::kStitchBuffer,
                     std::string("Expected ") + expected + " for " + name + " but received " + Describe(value));
  }
}

int64_t ToInteger(const Napi::Value& value, const char* name, const char* error_code) {
  if (value.IsNumber()) {
    const double v = value.As<Napi::Number>().DoubleValue();
    if (std::isfinite(v) && std::floor(v) == v && std::fabs(v) <= 9007199254740991.0) return static_cast<int64_t>(v);
  }
  throw CodedError(value.Env(), error_code,
                   std::string("Expected an integer for ") + name + " but received " + Describe(value));
}

Napi::Function StitcherBinding::Init(Napi::Env env) {
  return DefineClass(env, "NativeStitcher",
                     {
                         InstanceMethod("push", &StitcherBinding::Push),
                         InstanceMethod("process", &StitcherBinding::Process),
                         InstanceMethod("finish", &StitcherBinding::Finish),
                         InstanceMethod("readRaw", &StitcherBinding::ReadRaw),
                         InstanceMethod("missingRanges", &StitcherBinding::MissingRanges),
                         InstanceMethod("readAttenuation", &StitcherBinding::ReadAttenuation),
                         InstanceMethod("readMaterial", &StitcherBinding::ReadMaterial),
                         InstanceMethod("stats", &StitcherBinding::Stats),
                         InstanceMethod("close", &StitcherBinding::Close),
                         InstanceAccessor("tileFloats", &StitcherBinding::GetTileFloats, nullptr),
                         InstanceAccessor("previewBytes", &StitcherBinding::GetPreviewBytes, nullptr),
                     });
}

StitcherBinding::StitcherBinding(const Napi::CallbackInfo& info) : Napi::ObjectWrap<StitcherBinding>(info) {
  Napi::Env env = info.Env();
  const StitcherConfig config = ReadConfig(info[0]);
  core_ = Guard(env, [&] { return std::make_unique<Stitcher>(config); });
  tile_floats_ = core_->tile_floats();
  preview_bytes_ = core_->preview_bytes();
}

Stitcher& StitcherBinding::Core() {
  if (closed_) {
    throw CodedError(Env(), code::kStitchClosed, "the stitcher was closed; create a new one for the next scan");
  }
  return *core_;
}

void StitcherBinding::JobFinished() {
  if (!core_) return;
  core_->EndJob();
  if (closed_) core_.reset();
}

Napi::Value StitcherBinding::Push(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Stitcher& core = Core();
  const int64_t kind = ToInteger(info[0], "kind", code::kSliceHeader);
  const int64_t first_line = ToInteger(info[1], "firstLine", code::kSliceLineRange);
  const int64_t line_count = ToInteger(info[2], "lineCount", code::kSliceLineRange);
  Napi::Uint16Array payload = TypedArrayArg<Napi::Uint16Array>(info[3], napi_uint16_array, "a Uint16Array", "payload");
  // Any out-of-range kind stays out of range after narrowing to int (the core reports it).
  const int narrow_kind = static_cast<int>(std::max<int64_t>(std::min<int64_t>(kind, 1000), -1000));
  const PushResult r = Guard(env, [&] {
    return core.Push(narrow_kind, first_line, line_count, payload.Data(), payload.ElementLength());
  });
  Napi::Object result = Napi::Object::New(env);
  result.Set("newLines", Napi::Number::New(env, static_cast<double>(r.new_lines)));
  result.Set("duplicateLines", Napi::Number::New(env, static_cast<double>(r.duplicate_lines)));
  return result;
}

Napi::Value StitcherBinding::Process(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Stitcher& core = Core();
  Napi::Float32Array tiles = TypedArrayArg<Napi::Float32Array>(info[0], napi_float32_array, "a Float32Array", "tiles");
  Napi::Uint8Array preview = TypedArrayArg<Napi::Uint8Array>(info[1], napi_uint8_array, "a Uint8Array", "preview");
  const Job* job = &Guard(env, [&]() -> const Job& {
    return core.BeginJob(tiles.Data(), tiles.ElementLength(), preview.Data(), preview.ElementLength());
  });
  ProcessWorker* worker = nullptr;
  try {
    worker = new ProcessWorker(info.This().As<Napi::Object>(), this, &core, job, tiles, preview);
  } catch (...) {
    core.EndJob();
    throw;
  }
  Napi::Promise promise = worker->Promise();
  worker->Queue();  // the worker deletes itself after OnOK/OnError
  return promise;
}

Napi::Value StitcherBinding::Finish(const Napi::CallbackInfo& info) {
  Stitcher& core = Core();
  const int64_t total = ToInteger(info[0], "totalLines", code::kSliceLineRange);
  Guard(info.Env(), [&] { core.Finish(total); });
  return info.Env().Undefined();
}

Napi::Value StitcherBinding::ReadRaw(const Napi::CallbackInfo& info) {
  Stitcher& core = Core();
  const int64_t first = ToInteger(info[0], "firstLine", code::kSliceLineRange);
  const int64_t count = ToInteger(info[1], "lineCount", code::kSliceLineRange);
  Napi::Uint16Array out = TypedArrayArg<Napi::Uint16Array>(info[2], napi_uint16_array, "a Uint16Array", "out");
  Guard(info.Env(), [&] { core.ReadRaw(first, count, out.Data(), out.ElementLength()); });
  return info.Env().Undefined();
}

Napi::Value StitcherBinding::MissingRanges(const Napi::CallbackInfo& info) {
  Stitcher& core = Core();
  const int64_t first = ToInteger(info[0], "firstLine", code::kSliceLineRange);
  const int64_t count = ToInteger(info[1], "lineCount", code::kSliceLineRange);
  std::vector<std::pair<int64_t, int64_t>> ranges;
  Guard(info.Env(), [&] { ranges = core.MissingRanges(first, count); });
  Napi::Env env = info.Env();
  Napi::Array out = Napi::Array::New(env, ranges.size());
  for (size_t i = 0; i < ranges.size(); ++i) {
    Napi::Array pair = Napi::Array::New(env, 2);
    pair.Set(uint32_t{0}, Napi::Number::New(env, static_cast<double>(ranges[i].first)));
    pair.Set(uint32_t{1}, Napi::Number::New(env, static_cast<double>(ranges[i].second)));
    out.Set(static_cast<uint32_t>(i), pair);
  }
  return out;
}

Napi::Value StitcherBinding::ReadAttenuation(const Napi::CallbackInfo& info) {
  Stitcher& core = Core();
  const int64_t energy = ToInteger(info[0], "energy", code::kSliceGeometry);
  const int64_t first = ToInteger(info[1], "firstLine", code::kSliceLineRange);
  const int64_t count = ToInteger(info[2], "lineCount", code::kSliceLineRange);
  Napi::Float32Array out = TypedArrayArg<Napi::Float32Array>(info[3], napi_float32_array, "a Float32Array", "out");
  Guard(info.Env(), [&] {
    core.ReadAttenuation(static_cast<int>(std::max<int64_t>(std::min<int64_t>(energy, 1000), -1000)), first, count,
                         out.Data(), out.ElementLength());
  });
  return info.Env().Undefined();
}

Napi::Value StitcherBinding::ReadMaterial(const Napi::CallbackInfo& info) {
  Stitcher& core = Core();
  const int64_t first = ToInteger(info[0], "firstLine", code::kSliceLineRange);
  const int64_t count = ToInteger(info[1], "lineCount", code::kSliceLineRange);
  Napi::Uint8Array out = TypedArrayArg<Napi::Uint8Array>(info[2], napi_uint8_array, "a Uint8Array", "out");
  Guard(info.Env(), [&] { core.ReadMaterial(first, count, out.Data(), out.ElementLength()); });
  return info.Env().Undefined();
}

Napi::Value StitcherBinding::Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const StitcherStats s = Core().Stats();
  Napi::Object o = Napi::Object::New(env);
  auto num = [&](const char* name, double v) { o.Set(name, Napi::Number::New(env, v)); };
  num("storedLines", static_cast<double>(s.stored_lines));
  num("highestLine", static_cast<double>(s.highest_line));
  num("frontier", static_cast<double>(s.frontier));
  num("gapLines", static_cast<double>(s.gap_lines));
  num("lateLines", static_cast<double>(s.late_lines));
  num("duplicateLines", static_cast<double>(s.duplicate_lines));
  o.Set("calibrated", Napi::Boolean::New(env, s.calibrated));
  num("deadPixels", s.dead_pixels);
  num("tilesEmitted", static_cast<double>(s.tiles_emitted));
  num("memoryBytes", static_cast<double>(s.memory_bytes));
  return o;
}

Napi::Value StitcherBinding::Close(const Napi::CallbackInfo& info) {
  if (!closed_) {
    closed_ = true;
    if (core_ && !core_->busy()) core_.reset();  // else JobFinished frees it
  }
  return info.Env().Undefined();
}

Napi::Value StitcherBinding::GetTileFloats(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(tile_floats_));
}

Napi::Value StitcherBinding::GetPreviewBytes(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(preview_bytes_));
}

}  // namespace scanline

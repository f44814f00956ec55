// Runtime dispatch between a baseline build and an AVX2+FMA build of the hot loops (x86-64 GCC/Clang), so the addon
// stays portable while using 8-lane vectors where the CPU has them. A loop is written once as an always-inline
// body; SCANLINE_MULTIVERSION defines NAME (the dispatcher), NAME_baseline and NAME_avx2 around it. The bodies must
// not call out-of-line code that matters for speed (calls are not re-targeted), and must not use C++ library
// templates whose instantiations could be shared between the two builds.
#pragma once

#if defined(__GNUC__)
#define SCANLINE_INLINE inline __attribute__((always_inline))
#else
#define SCANLINE_INLINE inline
#endif

#if defined(__GNUC__) && defined(__x86_64__)
#define SCANLINE_HAVE_AVX2 1
#define SCANLINE_TARGET_AVX2 __attribute__((target("avx2,fma")))
#else
#define SCANLINE_TARGET_AVX2
#endif

namespace scanline {

// True when this CPU runs the AVX2+FMA builds (decided once, when the addon is loaded).
bool UseAvx2();

}  // namespace scanline

#ifdef SCANLINE_HAVE_AVX2
#define SCANLINE_MULTIVERSION(name, params, args)                     \
  void name##_baseline params { name##_body args; }                   \
  SCANLINE_TARGET_AVX2 void name##_avx2 params { name##_body args; }  \
  void name params {                                                  \
    if (::scanline::UseAvx2()) {                                      \
      name##_avx2 args;                                               \
    } else {                                                          \
      name##_baseline args;                                           \
    }                                                                 \
  }
#else
#define SCANLINE_MULTIVERSION(name, params, args) \
  void name params { name##_body args; }
#endif

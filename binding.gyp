{
  # The Scanline native addon: the per-scan stitcher (raw store, calibration, tiles, preview), extractPlane and the
  # file digest that seals scans (its OpenSSL is the one Node carries: headers with Node's, symbols resolved in the process).
  # `npm install` runs `node-gyp rebuild`; .npmrc points nodedir at the system Node headers, so it builds offline.
  "targets": [
    {
      "target_name": "scanline_native",
      "sources": [
        "native/addon.cc",
        "native/calibration.cc",
        "native/chunk_pool.cc",
        "native/extract_plane.cc",
        "native/file_digest.cc",
        "native/preview.cc",
        "native/row_runs.cc",
        "native/stitcher.cc",
        "native/stitcher_binding.cc",
        "native/tiles.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions", "-O2", "-O3", "-Os"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++1y", "-std=gnu++14", "-O2", "-Os"],
      "cflags": ["-O3", "-fno-trapping-math", "-fvisibility=hidden"],
      "cflags_cc": ["-std=c++17", "-O3", "-fno-trapping-math", "-fexceptions", "-fvisibility=hidden", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
        "GCC_OPTIMIZATION_LEVEL": "3",
        "OTHER_CFLAGS": ["-fvisibility=hidden"]
      },
      "msvs_settings": {
        "VCCLCompilerTool": { "ExceptionHandling": 1, "AdditionalOptions": ["/std:c++17", "/O2"] }
      }
    }
  ]
}

// Process-wide pool of raw-store chunks.
//
// Why: a truck is ~65 MB of raw lines (8000 x 2048 x 2 x u16); at line rate, fresh chunks mean the kernel
// faults in (and zeroes) new pages continuously. Reusing the chunks of finished scans keeps that memory warm
// (bench/RESULTS.md, 'Buffer pools').
// Chunks are handed out uninitialised: the stitcher tracks stored lines and never reads an unstored one.
//
// Threads: the addon may be loaded by several JS threads (worker_threads); the pool is shared and locked.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace scanline {

class ChunkPool {
 public:
  static ChunkPool& Instance();

  // A chunk of `samples` u16 values, from the pool when one of that size is free, else newly allocated.
  std::unique_ptr<uint16_t[]> Take(size_t samples);
  // Returns a chunk; kept while the pool holds less than its limit, freed otherwise.
  void Give(std::unique_ptr<uint16_t[]> chunk, size_t samples);
  size_t pooled_bytes();

 private:
  std::mutex mu_;
  std::unordered_map<size_t, std::vector<std::unique_ptr<uint16_t[]>>> free_;
  size_t pooled_bytes_ = 0;
  // Enough for ~8 finished trucks of 2048-pixel dual-energy lines; beyond it memory goes back to the allocator.
  static constexpr size_t kLimitBytes = size_t{512} << 20;
};

}  // namespace scanline

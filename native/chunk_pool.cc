#include "chunk_pool.h"

namespace scanline {

ChunkPool& ChunkPool::Instance() {
  // Never destroyed: stitchers may return chunks during process teardown.
  static ChunkPool* pool = new ChunkPool();
  return *pool;
}

std::unique_ptr<uint16_t[]> ChunkPool::Take(size_t samples) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = free_.find(samples);
    if (it != free_.end() && !it->second.empty()) {
      std::unique_ptr<uint16_t[]> chunk = std::move(it->second.back());
      it->second.pop_back();
      pooled_bytes_ -= samples * sizeof(uint16_t);
      return chunk;
    }
  }
  return std::unique_ptr<uint16_t[]>(new uint16_t[samples]);
}

void ChunkPool::Give(std::unique_ptr<uint16_t[]> chunk, size_t samples) {
  if (!chunk) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (pooled_bytes_ + samples * sizeof(uint16_t) > kLimitBytes) return;  // `chunk` is freed on return
  pooled_bytes_ += samples * sizeof(uint16_t);
  free_[samples].push_back(std::move(chunk));
}

size_t ChunkPool::pooled_bytes() {
  std::lock_guard<std::mutex> lock(mu_);
  return pooled_bytes_;
}

}  // namespace scanline

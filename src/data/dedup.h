// Deduplication. Exact: a 128-bit xxHash (XXH3) of the normalised document
// (ASCII lower-cased, every whitespace run one space, trimmed), so copies that
// differ only in case or spacing collapse; 128 bits keep the false-merge
// probability negligible even at billions of documents. Near: MinHash over
// word n-gram shingles with LSH banding, verified by the signature estimate.
// Memory: 16 bytes per kept document (exact), 4·num_perm bytes (near).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "data/mix.h"

namespace hessgpt::data {

std::string normalize_for_dedup(std::string_view text);

struct Hash128 {
  uint64_t lo = 0, hi = 0;
  bool operator==(const Hash128&) const = default;
};
struct Hash128Hasher {
  size_t operator()(const Hash128& h) const { return static_cast<size_t>(h.lo ^ (h.hi * 0x9E3779B97F4A7C15ull)); }
};

Hash128 dedup_hash(std::string_view text);  // hash of normalize_for_dedup(text)

class ExactDedup {
 public:
  // True when the hash is new (the document is kept).
  bool insert(const Hash128& h) { return seen_.insert(h).second; }
  size_t size() const { return seen_.size(); }

 private:
  std::unordered_set<Hash128, Hash128Hasher> seen_;
};

// MinHash signature: num_perm minima of 32-bit hashes of the word shingles.
std::vector<uint32_t> minhash_signature(std::string_view text, const DedupConfig& config);
double estimated_jaccard(const std::vector<uint32_t>& a, const std::vector<uint32_t>& b);

class NearDedup {
 public:
  explicit NearDedup(const DedupConfig& config);
  // True when no kept document is a near-duplicate; the signature is then kept.
  bool insert(const std::vector<uint32_t>& signature);

 private:
  DedupConfig config_;
  std::vector<std::vector<uint32_t>> signatures_;
  std::vector<std::unordered_multimap<uint64_t, uint32_t>> buckets_;  // per band: band hash → doc
};

}  // namespace hessgpt::data

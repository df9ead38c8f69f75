#include "data/dedup.h"

#include <algorithm>
#include <limits>

#include <xxhash.h>

namespace hessgpt::data {
namespace {

bool is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace

std::string normalize_for_dedup(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool pending_space = false;
  for (const char ch : text) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (is_space(c)) {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out += ' ';
    pending_space = false;
    out += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : ch;
  }
  return out;
}

Hash128 dedup_hash(std::string_view text) {
  const std::string norm = normalize_for_dedup(text);
  const XXH128_hash_t h = XXH3_128bits(norm.data(), norm.size());
  return {h.low64, h.high64};
}

std::vector<uint32_t> minhash_signature(std::string_view text, const DedupConfig& config) {
  const std::string norm = normalize_for_dedup(text);
  std::vector<std::string_view> words;
  for (size_t i = 0; i < norm.size();) {
    const size_t j = std::min(norm.find(' ', i), norm.size());
    words.emplace_back(norm.data() + i, j - i);
    i = j + 1;
  }
  std::vector<uint32_t> sig(static_cast<size_t>(config.num_perm), std::numeric_limits<uint32_t>::max());
  const size_t n = static_cast<size_t>(config.shingle_words);
  const size_t shingles = words.size() >= n ? words.size() - n + 1 : (words.empty() ? 0 : 1);
  for (size_t s = 0; s < shingles; ++s) {
    const size_t last = std::min(s + n, words.size()) - 1;
    const char* begin = words[s].data();
    const char* end = words[last].data() + words[last].size();
    const uint64_t base = XXH3_64bits(begin, static_cast<size_t>(end - begin));
    // One strong base hash re-mixed per permutation: cheap and independent enough.
    for (size_t p = 0; p < sig.size(); ++p) {
      const uint32_t h = static_cast<uint32_t>(splitmix64(base ^ (0x51ED27Full * (p + 1))) >> 32);
      if (h < sig[p]) sig[p] = h;
    }
  }
  return sig;
}

double estimated_jaccard(const std::vector<uint32_t>& a, const std::vector<uint32_t>& b) {
  if (a.empty() || a.size() != b.size()) return 0;
  size_t same = 0;
  for (size_t i = 0; i < a.size(); ++i) same += a[i] == b[i];
  return static_cast<double>(same) / static_cast<double>(a.size());
}

NearDedup::NearDedup(const DedupConfig& config)
    : config_(config), buckets_(static_cast<size_t>(config.bands)) {}

bool NearDedup::insert(const std::vector<uint32_t>& sig) {
  const size_t rows = sig.size() / static_cast<size_t>(config_.bands);
  std::vector<uint64_t> band_hashes(static_cast<size_t>(config_.bands));
  for (size_t b = 0; b < band_hashes.size(); ++b) {
    band_hashes[b] = XXH3_64bits(sig.data() + b * rows, rows * sizeof(uint32_t));
    const auto range = buckets_[b].equal_range(band_hashes[b]);
    for (auto it = range.first; it != range.second; ++it)
      if (estimated_jaccard(sig, signatures_[it->second]) >= config_.near_threshold) return false;
  }
  const uint32_t id = static_cast<uint32_t>(signatures_.size());
  signatures_.push_back(sig);
  for (size_t b = 0; b < band_hashes.size(); ++b) buckets_[b].emplace(band_hashes[b], id);
  return true;
}

}  // namespace hessgpt::data

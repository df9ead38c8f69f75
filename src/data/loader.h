// Reading prepared data for training. A Dataset is a prepared folder (its
// manifest.json); a BatchLoader memory-maps one chunk's train or val file and
// serves batches of (input, target) windows. Opening maps the file (no read),
// so a 1B-token chunk opens in well under a millisecond and pages in on demand.
//
// Examples: a stored row holds seq_len + 1 tokens (S = seq_len). Training with
// T <= S cuts each row into W = S / T windows; window w of row r gives
//   inputs  = row[w·T .. w·T + T)      targets = row[w·T + 1 .. w·T + T + 1)
// so every stored token is a target once when T divides S.
// Order: sequential = stored order (rows were already shuffled by prepare);
// random = a fresh seeded permutation of all examples each epoch (a Feistel
// bijection, O(1) memory). Both wrap around into the next epoch.
// Position: LoaderState is plain integers; restoring it reproduces the exact
// same batches (bit-exact resume).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/npy.h"

namespace hessgpt::data {

enum class Split { kTrain = 0, kVal = 1 };
enum class Order { kSequential = 0, kRandom = 1 };

std::string_view split_name(Split split);  // "train" / "val"

struct ChunkInfo {
  int index = 0;
  std::string train_path, val_path;  // full paths
  int64_t train_rows = 0, val_rows = 0;
};

class Dataset {
 public:
  // Reads DIR/manifest.json; throws Error for a folder without one (never
  // prepared, or its prepare was interrupted) or with missing chunk files.
  static Dataset open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  int num_chunks() const { return static_cast<int>(chunks_.size()); }
  const ChunkInfo& chunk(int i) const;
  int64_t seq_len() const { return seq_len_; }  // stored: rows hold seq_len + 1 tokens
  int64_t row_len() const { return seq_len_ + 1; }
  int64_t rows(int chunk, Split split) const;
  int64_t tokens(int chunk, Split split) const { return rows(chunk, split) * row_len(); }
  int64_t train_tokens() const;
  int64_t val_tokens() const;
  int32_t tokenizer_vocab_size() const { return tokenizer_vocab_; }
  const std::string& tokenizer_checksum() const { return tokenizer_checksum_; }
  const nlohmann::json& manifest() const { return manifest_; }

 private:
  std::string dir_;
  nlohmann::json manifest_;
  std::vector<ChunkInfo> chunks_;
  int64_t seq_len_ = 0;
  int32_t tokenizer_vocab_ = 0;
  std::string tokenizer_checksum_;
};

// Save in checkpoints; all plain integers. The first six fields are the
// loader's configuration (checked on restore), `consumed` its position.
struct LoaderState {
  int64_t chunk = 0;
  int64_t split = 0;     // Split
  int64_t order = 0;     // Order
  uint64_t seed = 0;
  int64_t batch = 0;
  int64_t seq = 0;
  int64_t consumed = 0;  // examples served so far, over all epochs
  nlohmann::json to_json() const;
  static LoaderState from_json(const nlohmann::json& j);  // throws Error naming a missing field
};

class BatchLoader {
 public:
  // vocab_size: the model's vocabulary; every id served is checked against it.
  // Throws Error for seq > stored seq_len, an empty split, a chunk out of range,
  // a chunk file that does not match the manifest, or data prepared with a
  // larger vocabulary than vocab_size.
  BatchLoader(const Dataset& data, int chunk, Split split, int64_t batch, int64_t seq,
              Order order, uint64_t seed, int32_t vocab_size);

  // Fills inputs[batch·seq] and targets[batch·seq] (row-major [batch, seq]).
  void next(std::span<int32_t> inputs, std::span<int32_t> targets);

  int64_t batch() const { return batch_; }
  int64_t seq() const { return seq_; }
  int64_t examples_per_epoch() const { return examples_; }   // rows · (seq_len / seq)
  int64_t batches_per_epoch() const { return examples_ / batch_; }
  int64_t epoch() const { return consumed_ / examples_; }    // completed passes
  LoaderState state() const;
  void set_state(const LoaderState& state);  // Error if saved under another configuration
  void reset() { consumed_ = 0; }

  // Reads every id of this split once; throws Error naming the file, row and
  // column of the first id >= vocab_size. (next() checks what it serves anyway.)
  void validate_all() const;

 private:
  int64_t example_at(int64_t position) const;  // position in the stream → example index

  std::string path_;
  MappedNpy npy_;
  const uint16_t* tokens_ = nullptr;
  int64_t rows_ = 0, row_len_ = 0;
  int64_t chunk_ = 0;
  Split split_;
  Order order_;
  uint64_t seed_;
  int64_t batch_, seq_;
  int32_t vocab_;
  int64_t windows_ = 1;   // per row
  int64_t examples_ = 0;
  int64_t consumed_ = 0;
};

// A bijection of [0, n) chosen by `key`: a 4-round Feistel network over the
// next power of four, with cycle walking. Used for per-epoch random order.
class FeistelPermutation {
 public:
  FeistelPermutation(uint64_t n, uint64_t key);
  uint64_t operator()(uint64_t i) const;

 private:
  uint64_t n_;
  int half_bits_;
  uint64_t half_mask_;
  uint64_t keys_[4];
};

}  // namespace hessgpt::data

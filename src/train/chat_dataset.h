// Chat fine-tuning data: JSONL conversations (SPEC §5) encoded with the chat
// template into ids and next-token targets (-100 where the loss is masked:
// system, user, and <|result|> ... <|end|> spans), and batches padded only to
// their longest member. Padding sits at the end of a row: causal attention
// never lets a real token see it, and its targets are -100.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/rng.h"
#include "tokenizer/tokenizer.h"

namespace hessgpt {

enum class OverflowRule { Truncate, Drop };

struct ChatExample {
  std::vector<int32_t> ids;
  std::vector<int32_t> targets;  // aligned with ids
  int64_t trained_tokens = 0;    // targets != -100
};

struct ChatLoadReport {
  int64_t conversations = 0, kept = 0, truncated = 0, dropped_too_long = 0, dropped_invalid = 0,
          dropped_no_target = 0;
};

// Reads and encodes a JSONL file: chat conversations, or Model 2 examples
// (lines with a top-level "kind", see data/synth/model2_format.h); malformed
// lines are skipped and counted
// (their first error is logged). Conversations longer than max_len are cut
// to max_len tokens (Truncate) or left out (Drop).
std::vector<ChatExample> load_chat_examples(const std::string& path, const Tokenizer& tokenizer,
                                            int64_t max_len, OverflowRule rule,
                                            ChatLoadReport& report);

struct PaddedBatch {
  int64_t batch = 0, seq = 0;
  std::vector<int32_t> ids, targets;  // [batch, seq], padded with id 0 / target -100
  int64_t trained_tokens = 0;
};

PaddedBatch pad_batch(const std::vector<const ChatExample*>& examples);

// A seeded, epoch-wise shuffled stream of examples; its position is two integers.
// With lengths and a group size (the micro-batch), consecutive groups hold
// examples of similar length (like HF's group_by_length): each epoch's
// shuffled order is cut into windows of kGroupWindow groups, a window is
// sorted by length, cut into groups, and the groups are shuffled. Batches
// then pad far less while every example is still seen once per epoch.
class ChatSampler {
 public:
  static constexpr int64_t kGroupWindow = 64;
  ChatSampler(int64_t n_examples, uint64_t seed, std::vector<int64_t> lengths = {}, int64_t group = 0);
  int64_t next();  // example index
  int64_t epoch() const { return epoch_; }
  int64_t position() const { return position_; }
  void restore(int64_t epoch, int64_t position);

 private:
  void shuffle();
  int64_t n_;
  uint64_t seed_;
  std::vector<int64_t> lengths_;
  int64_t group_ = 0;
  int64_t epoch_ = 0, position_ = 0;
  std::vector<int64_t> order_;
};

}  // namespace hessgpt

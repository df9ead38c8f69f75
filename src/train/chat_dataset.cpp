#include "train/chat_dataset.h"

#include <algorithm>
#include <fstream>
#include <numeric>

#include "core/log.h"
#include "data/synth/model2_format.h"
#include "tokenizer/chat_template.h"

namespace hessgpt {

std::vector<ChatExample> load_chat_examples(const std::string& path, const Tokenizer& tokenizer,
                                            int64_t max_len, OverflowRule rule,
                                            ChatLoadReport& report) {
  std::ifstream in(path);
  if (!in) HG_FAIL("cannot open chat data '", path, "'");
  std::vector<ChatExample> out;
  std::string line;
  int64_t line_no = 0;
  bool logged = false;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    ++report.conversations;
    chat::EncodedChat enc;
    try {
      // A line with a top-level "kind" is a Model 2 example: its prompt opens
      // with that route token (<s> <|user|> <|kind|> request <|end|> <|assistant|>).
      const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_object() && j.contains("kind"))
        enc = synth::encode_model2_example(tokenizer, synth::model2_example_from_json(j));
      else
        enc = chat::encode_conversation(tokenizer, chat::conversation_from_json_line(line));
    } catch (const Error& e) {
      ++report.dropped_invalid;
      if (!logged) log_warn(path, ":", line_no, ": skipped: ", e.what());
      logged = true;
      continue;
    }
    ChatExample ex;
    ex.ids = std::move(enc.ids);
    ex.targets = chat::next_token_targets({ex.ids, enc.loss_mask});
    if (static_cast<int64_t>(ex.ids.size()) > max_len) {
      if (rule == OverflowRule::Drop) {
        ++report.dropped_too_long;
        continue;
      }
      ex.ids.resize(static_cast<size_t>(max_len));
      ex.targets.resize(static_cast<size_t>(max_len));
      ++report.truncated;
    }
    ex.trained_tokens = std::count_if(ex.targets.begin(), ex.targets.end(), [](int32_t t) { return t != -100; });
    if (ex.trained_tokens == 0) {
      ++report.dropped_no_target;
      continue;
    }
    out.push_back(std::move(ex));
    ++report.kept;
  }
  return out;
}

PaddedBatch pad_batch(const std::vector<const ChatExample*>& examples) {
  PaddedBatch b;
  b.batch = static_cast<int64_t>(examples.size());
  for (const ChatExample* e : examples) b.seq = std::max<int64_t>(b.seq, static_cast<int64_t>(e->ids.size()));
  b.ids.assign(static_cast<size_t>(b.batch * b.seq), 0);
  b.targets.assign(b.ids.size(), -100);
  for (int64_t r = 0; r < b.batch; ++r) {
    const ChatExample& e = *examples[static_cast<size_t>(r)];
    std::copy(e.ids.begin(), e.ids.end(), b.ids.begin() + r * b.seq);
    std::copy(e.targets.begin(), e.targets.end(), b.targets.begin() + r * b.seq);
    b.trained_tokens += e.trained_tokens;
  }
  return b;
}

ChatSampler::ChatSampler(int64_t n_examples, uint64_t seed, std::vector<int64_t> lengths, int64_t group)
    : n_(n_examples), seed_(seed), lengths_(std::move(lengths)), group_(group) {
  HG_CHECK(n_ > 0, "no examples to sample from");
  HG_CHECK(lengths_.empty() || static_cast<int64_t>(lengths_.size()) == n_, "one length per example");
  shuffle();
}

void ChatSampler::shuffle() {
  order_.resize(static_cast<size_t>(n_));
  std::iota(order_.begin(), order_.end(), 0);
  Rng rng(seed_ + static_cast<uint64_t>(epoch_) * 0x9e3779b97f4a7c15ULL);
  for (int64_t i = n_ - 1; i > 0; --i)
    std::swap(order_[static_cast<size_t>(i)], order_[rng.below(static_cast<uint64_t>(i + 1))]);
  if (lengths_.empty() || group_ <= 1) return;
  const int64_t window = group_ * kGroupWindow;
  std::vector<int64_t> sorted;
  for (int64_t w0 = 0; w0 < n_; w0 += window) {
    const int64_t w1 = std::min(n_, w0 + window);
    const auto first = order_.begin() + w0, last = order_.begin() + w1;
    std::stable_sort(first, last, [&](int64_t a, int64_t b) {
      return lengths_[static_cast<size_t>(a)] > lengths_[static_cast<size_t>(b)];
    });
    // Shuffle whole groups so a step's batch is not always the longest or shortest.
    const int64_t groups = (w1 - w0 + group_ - 1) / group_;
    std::vector<int64_t> perm(static_cast<size_t>(groups));
    std::iota(perm.begin(), perm.end(), 0);
    for (int64_t i = groups - 1; i > 0; --i)
      std::swap(perm[static_cast<size_t>(i)], perm[rng.below(static_cast<uint64_t>(i + 1))]);
    sorted.clear();
    for (int64_t g : perm)
      for (int64_t k = w0 + g * group_; k < std::min(w1, w0 + (g + 1) * group_); ++k)
        sorted.push_back(order_[static_cast<size_t>(k)]);
    std::copy(sorted.begin(), sorted.end(), first);
  }
}

int64_t ChatSampler::next() {
  if (position_ == n_) {
    ++epoch_;
    position_ = 0;
    shuffle();
  }
  return order_[static_cast<size_t>(position_++)];
}

void ChatSampler::restore(int64_t epoch, int64_t position) {
  epoch_ = epoch;
  position_ = position;
  shuffle();
}

}  // namespace hessgpt

// Shared fixtures for the tokenizer tests.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "tokenizer/model_rebuild.h"
#include "tokenizer/tokenizer.h"

namespace hessgpt::testing {

// The default (rebuilt Mistral) tokenizer, loaded once.
inline const Tokenizer& mistral() {
  static const std::unique_ptr<Tokenizer> tok = Tokenizer::load_default();
  return *tok;
}

// A tiny BPE vocabulary: <unk> <s> </s>, the 256 byte pieces, then `pieces`.
inline BpeVocabMerges tiny_bpe(const std::vector<std::string>& pieces,
                               const std::vector<std::pair<std::string, std::string>>& merges) {
  BpeVocabMerges bpe;
  bpe.vocab = {"<unk>", "<s>", "</s>"};
  for (int b = 0; b < 256; ++b) bpe.vocab.push_back(spm::byte_piece_name(b));
  bpe.vocab.insert(bpe.vocab.end(), pieces.begin(), pieces.end());
  const auto id = [&](const std::string& p) {
    for (size_t i = 0; i < bpe.vocab.size(); ++i) {
      if (bpe.vocab[i] == p) return int32_t(i);
    }
    return int32_t(-1);
  };
  for (const auto& [a, b] : merges) bpe.merges.emplace_back(id(a), id(b));
  return bpe;
}

}  // namespace hessgpt::testing

// Rebuilds the Mistral-7B-v0.1 SentencePiece model offline from the
// vocabulary and merge list baked into the npm package mistral-tokenizer-js
// (which took them from the model's HF tokenizer.json).
//
// SentencePiece BPE merges, at each step, the adjacent pair whose joined piece
// has the highest score (leftmost on ties); HF-style BPE applies the merge that
// comes first in its merge list. The two agree when a piece's score falls with
// the position at which the piece FIRST appears in the merge list. That is not
// id order: the pieces made only of "▁" (ids 259, 260, ...) come last in the
// merge list, so runs of spaces join only after everything else has merged.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/spm_model_writer.h"

namespace hessgpt {

// A BPE tokenizer in the HF tokenizer.json shape.
struct BpeVocabMerges {
  std::vector<std::string> vocab;                    // id -> piece
  std::vector<std::pair<int32_t, int32_t>> merges;   // highest priority first, ids into vocab
};

// Reads `vocab_base64` and `merges_binary` out of mistral-tokenizer.js.
// `source_name` names the file in error messages.
BpeVocabMerges parse_mistral_tokenizer_js(std::string_view js_source, const std::string& source_name);

// The equivalent SentencePiece model: "<unk>" is the unknown piece, "<s>" and
// "</s>" control pieces, "<0x00>".."<0xFF>" byte-fallback pieces (all 256 or
// none), everything else normal; scores as explained above.
spm::BpeModelSpec bpe_model_from_merges(const BpeVocabMerges& bpe);

// Reads mistral-tokenizer.js at `js_path` and writes the model file to
// `out_path` (parent folders created, replaced atomically). Returns the file's
// SHA-256.
std::string rebuild_mistral_model(const std::string& js_path, const std::string& out_path);

// Standard base64 (RFC 4648) with optional '=' padding; throws on bad input.
std::string base64_decode(std::string_view text);

}  // namespace hessgpt

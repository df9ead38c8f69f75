// The tokenizer as the exports (io/export_gguf.h, io/export_hf.h) carry it:
// every id's piece, score and type, the special ids, and the chat template of
// SPEC §3 written in Jinja for Hugging Face and llama.cpp.
#pragma once

#include "io/export_vocab.h"
#include "tokenizer/tokenizer.h"

namespace hessgpt {

ExportVocab export_vocab(const Tokenizer& tokenizer);

// The template renders messages [{role, content, routes?}] the way
// chat::encode_conversation does, text right after each role token (readers
// that add SentencePiece's space prefix after special tokens, as llama.cpp
// does, then produce the same ids). add_generation_prompt appends
// <|assistant|>.
extern const char* const kChatTemplateJinja;

}  // namespace hessgpt

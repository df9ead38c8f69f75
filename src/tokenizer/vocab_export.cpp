#include "tokenizer/vocab_export.h"

namespace hessgpt {

const char* const kChatTemplateJinja =
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}<|system|>"
    "{% elif message['role'] == 'user' %}<|user|>"
    "{% elif message['role'] == 'assistant' %}<|assistant|>"
    "{% if message['routes'] is defined %}{% for route in message['routes'] %}"
    "<|{{ route['kind'] }}|>{{ route['request'] }}<|end|><|result|>{{ route['result'] }}<|end|>"
    "{% endfor %}{% endif %}"
    "{% else %}{{ raise_exception('unknown role: ' + message['role']) }}"
    "{% endif %}"
    "{{ message['content'] }}<|end|>"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}";

ExportVocab export_vocab(const Tokenizer& tokenizer) {
  ExportVocab v;
  const int32_t n = tokenizer.vocab_size();
  v.pieces.reserve(static_cast<size_t>(n));
  for (int32_t id = 0; id < n; ++id) {
    const Tokenizer::PieceKind kind = tokenizer.piece_kind(id);
    GgufTokenType type = GgufTokenType::kNormal;
    switch (kind) {
      case Tokenizer::PieceKind::kNormal: type = GgufTokenType::kNormal; break;
      case Tokenizer::PieceKind::kUnknown: type = GgufTokenType::kUnknown; break;
      case Tokenizer::PieceKind::kControl: type = GgufTokenType::kControl; break;
      case Tokenizer::PieceKind::kByte: type = GgufTokenType::kByte; break;
      case Tokenizer::PieceKind::kUnused: type = GgufTokenType::kUnused; break;
    }
    v.pieces.push_back(kind == Tokenizer::PieceKind::kUnused ? unused_piece(id)
                                                             : tokenizer.id_to_piece(id));
    v.scores.push_back(tokenizer.piece_score(id));
    v.types.push_back(type);
  }
  v.unk = token::kUnk;
  v.bos = token::kBos;
  v.eos = token::kEos;
  v.end_of_turn = token::kEnd;
  v.chat_template = kChatTemplateJinja;
  v.sentencepiece_model = tokenizer.path();
  return v;
}

}  // namespace hessgpt

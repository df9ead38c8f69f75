// Model 2's training examples (SPEC §3): Model 2 sees
//   <s> <|user|> <|kind|> request <|end|> <|assistant|>
// and is trained to write the program (or code) and <|end|>. A line of
// model2_*.jsonl is an ordinary chat conversation (so the chat reader in
// tokenizer/chat_template.h parses it) plus a top-level "kind" naming the
// route token that opens the user turn:
//   {"kind": "math", "messages": [{"role": "user", "content": "Calculate 37*41"},
//                                 {"role": "assistant", "content": "print(37*41)"}],
//    "task": "arithmetic", "language": "python", "result": "1517"}
// "task", "language" and "result" (the program's stdout for math/logic) are
// for evaluation and are ignored by the encoder.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "tokenizer/chat_template.h"

namespace hessgpt::synth {

struct Model2Example {
  chat::RouteKind kind = chat::RouteKind::kMath;
  std::string request;
  std::string answer;  // the program or code Model 2 writes
};

nlohmann::json model2_example_to_json(const Model2Example& example);
// Throws Error naming the field when the line is not a Model 2 example:
// "kind" missing or unknown, or messages not exactly [user, assistant].
Model2Example model2_example_from_json(const nlohmann::json& j);

// chat::encode_route_prompt(kind, request) (all masked) + answer + <|end|>
// (trained). The same ids as chat::encode_conversation of the plain
// conversation with the route token inserted after <|user|>.
chat::EncodedChat encode_model2_example(const Tokenizer& tokenizer, const Model2Example& example);

}  // namespace hessgpt::synth

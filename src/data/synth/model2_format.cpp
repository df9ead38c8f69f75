#include "data/synth/model2_format.h"

#include "core/error.h"

namespace hessgpt::synth {

nlohmann::json model2_example_to_json(const Model2Example& example) {
  chat::Conversation conv;
  conv.messages.push_back({chat::Role::kUser, example.request, {}});
  conv.messages.push_back({chat::Role::kAssistant, example.answer, {}});
  nlohmann::json j = chat::conversation_to_json(conv);
  j["kind"] = chat::route_kind_name(example.kind);
  return j;
}

Model2Example model2_example_from_json(const nlohmann::json& j) {
  const chat::Conversation conv = chat::conversation_from_json(j);  // also checks the object
  const auto kind = j.find("kind");
  if (kind == j.end() || !kind->is_string()) HG_FAIL("model 2 example: \"kind\" (math, logic or code) missing");
  const auto k = chat::route_kind_from_name(kind->get<std::string>());
  if (!k) HG_FAIL("model 2 example: kind \"", kind->get<std::string>(), "\" is not one of math, code, logic");
  if (conv.messages.size() != 2 || conv.messages[0].role != chat::Role::kUser ||
      conv.messages[1].role != chat::Role::kAssistant || !conv.messages[1].routes.empty()) {
    HG_FAIL("model 2 example: messages must be exactly [user request, assistant program]");
  }
  return {*k, conv.messages[0].content, conv.messages[1].content};
}

chat::EncodedChat encode_model2_example(const Tokenizer& tokenizer, const Model2Example& example) {
  chat::EncodedChat out;
  out.ids = chat::encode_route_prompt(tokenizer, example.kind, example.request);
  out.loss_mask.assign(out.ids.size(), 0);  // the prompt comes from the router
  for (const int32_t id : tokenizer.encode(example.answer)) {
    out.ids.push_back(id);
    out.loss_mask.push_back(1);
  }
  out.ids.push_back(token::kEnd);  // Model 2 must learn to stop
  out.loss_mask.push_back(1);
  return out;
}

}  // namespace hessgpt::synth

#include "tokenizer/chat_template.h"

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace hessgpt::chat {
namespace {

// Appends ids with one mask value.
struct Builder {
  EncodedChat out;
  void add(int32_t id, bool train) {
    out.ids.push_back(id);
    out.loss_mask.push_back(train ? 1 : 0);
  }
  void add(const std::vector<int32_t>& ids, bool train) {
    out.ids.insert(out.ids.end(), ids.begin(), ids.end());
    out.loss_mask.insert(out.loss_mask.end(), ids.size(), train ? 1 : 0);
  }
};

int32_t role_token(Role role) {
  switch (role) {
    case Role::kSystem: return token::kSystem;
    case Role::kUser: return token::kUser;
    case Role::kAssistant: return token::kAssistant;
  }
  HG_FAIL("unknown role ", static_cast<int>(role));
}

// Describes an id for error messages: "<|end|>" or "id 1234".
std::string describe(int32_t id) {
  if (token::is_special(id)) return std::string(token::special_name(id));
  if (id == token::kBos) return "<s>";
  if (id == token::kEos) return "</s>";
  return str_cat("id ", id);
}

// Walks ids left to right, failing with the position of the first surprise.
class Reader {
 public:
  Reader(const Tokenizer& tokenizer, std::span<const int32_t> ids) : tokenizer_(tokenizer), ids_(ids) {}

  bool done() const { return pos_ >= ids_.size(); }
  size_t position() const { return pos_; }
  int32_t peek() const { return done() ? -1 : ids_[pos_]; }
  void skip() { ++pos_; }

  void expect(int32_t id, std::string_view where) {
    if (done()) HG_FAIL("chat ids end inside ", where, ": expected ", describe(id));
    if (ids_[pos_] != id) {
      HG_FAIL("chat ids: position ", pos_, " in ", where, ": expected ", describe(id), ", found ", describe(ids_[pos_]));
    }
    ++pos_;
  }

  // Ordinary ids up to the next special token, decoded.
  std::string text(std::string_view where) {
    const size_t begin = pos_;
    while (!done() && !token::is_special(ids_[pos_])) {
      if (ids_[pos_] == token::kBos || ids_[pos_] == token::kEos) {
        HG_FAIL("chat ids: position ", pos_, " in ", where, ": ", describe(ids_[pos_]), " inside text");
      }
      ++pos_;
    }
    return tokenizer_.decode(ids_.subspan(begin, pos_ - begin));
  }

 private:
  const Tokenizer& tokenizer_;
  std::span<const int32_t> ids_;
  size_t pos_ = 0;
};

std::string field_string(const nlohmann::json& obj, const char* key, const std::string& where) {
  const auto it = obj.find(key);
  if (it == obj.end()) HG_FAIL(where, ".", key, ": missing");
  if (!it->is_string()) HG_FAIL(where, ".", key, ": expected a string, found ", it->type_name());
  return it->get<std::string>();
}

}  // namespace

int32_t route_token(RouteKind kind) {
  switch (kind) {
    case RouteKind::kCode: return token::kCode;
    case RouteKind::kMath: return token::kMath;
    case RouteKind::kLogic: return token::kLogic;
  }
  HG_FAIL("unknown route kind ", static_cast<int>(kind));
}

std::optional<RouteKind> route_kind_of(int32_t id) {
  if (id == token::kCode) return RouteKind::kCode;
  if (id == token::kMath) return RouteKind::kMath;
  if (id == token::kLogic) return RouteKind::kLogic;
  return std::nullopt;
}

std::string_view role_name(Role role) {
  switch (role) {
    case Role::kSystem: return "system";
    case Role::kUser: return "user";
    case Role::kAssistant: return "assistant";
  }
  return "?";
}

std::string_view route_kind_name(RouteKind kind) {
  switch (kind) {
    case RouteKind::kCode: return "code";
    case RouteKind::kMath: return "math";
    case RouteKind::kLogic: return "logic";
  }
  return "?";
}

std::optional<RouteKind> route_kind_from_name(std::string_view name) {
  for (RouteKind k : {RouteKind::kCode, RouteKind::kMath, RouteKind::kLogic})
    if (route_kind_name(k) == name) return k;
  return std::nullopt;
}

void validate(const Conversation& conversation) {
  if (conversation.messages.empty()) HG_FAIL("conversation: no messages");
  for (size_t i = 0; i < conversation.messages.size(); ++i) {
    const Message& m = conversation.messages[i];
    if (m.role == Role::kSystem && i != 0) HG_FAIL("messages[", i, "]: a system message may only come first");
    if (!m.routes.empty() && m.role != Role::kAssistant) {
      HG_FAIL("messages[", i, "]: only assistant messages may carry routes (role is ", role_name(m.role), ")");
    }
    if (m.routes.size() > kMaxRoutesPerTurn) {
      HG_FAIL("messages[", i, "]: ", m.routes.size(), " routes; at most ", kMaxRoutesPerTurn, " per turn");
    }
  }
}

EncodedChat encode_conversation(const Tokenizer& tokenizer, const Conversation& conversation) {
  validate(conversation);
  Builder b;
  b.add(token::kBos, false);
  for (const Message& m : conversation.messages) {
    const bool assistant = m.role == Role::kAssistant;
    b.add(role_token(m.role), false);  // the template, not the model, opens a turn
    for (const Route& r : m.routes) {
      b.add(route_token(r.kind), true);
      b.add(tokenizer.encode(r.request), true);
      b.add(token::kEnd, true);
      b.add(token::kResult, false);  // the tool's answer: never a target
      b.add(tokenizer.encode(r.result), false);
      b.add(token::kEnd, false);
    }
    b.add(tokenizer.encode(m.content), assistant);
    b.add(token::kEnd, assistant);  // Model 1 must learn to end its turn
  }
  return std::move(b.out);
}

std::vector<int32_t> next_token_targets(const EncodedChat& encoded) {
  HG_CHECK(encoded.ids.size() == encoded.loss_mask.size());
  std::vector<int32_t> targets(encoded.ids.size(), -100);
  for (size_t t = 0; t + 1 < encoded.ids.size(); ++t) {
    if (encoded.loss_mask[t + 1]) targets[t] = encoded.ids[t + 1];
  }
  return targets;
}

std::vector<int32_t> encode_generation_prompt(const Tokenizer& tokenizer, const Conversation& conversation) {
  std::vector<int32_t> ids = encode_conversation(tokenizer, conversation).ids;
  ids.push_back(token::kAssistant);
  return ids;
}

std::vector<int32_t> encode_route_prompt(const Tokenizer& tokenizer, RouteKind kind, std::string_view request) {
  std::vector<int32_t> ids = {token::kBos, token::kUser, route_token(kind)};
  const std::vector<int32_t> text = tokenizer.encode(request);
  ids.insert(ids.end(), text.begin(), text.end());
  ids.push_back(token::kEnd);
  ids.push_back(token::kAssistant);
  return ids;
}

std::vector<int32_t> encode_route_result(const Tokenizer& tokenizer, std::string_view result) {
  std::vector<int32_t> ids = {token::kResult};
  const std::vector<int32_t> text = tokenizer.encode(result);
  ids.insert(ids.end(), text.begin(), text.end());
  ids.push_back(token::kEnd);
  return ids;
}

Conversation decode_conversation(const Tokenizer& tokenizer, std::span<const int32_t> ids) {
  Reader r(tokenizer, ids);
  Conversation conv;
  if (r.peek() == token::kBos) r.skip();
  while (!r.done()) {
    if (r.peek() == token::kEos) {
      r.skip();
      if (!r.done()) HG_FAIL("chat ids: </s> before the end of the sequence");
      break;
    }
    Message m;
    const int32_t head = r.peek();
    if (head == token::kSystem) {
      m.role = Role::kSystem;
    } else if (head == token::kUser) {
      m.role = Role::kUser;
    } else if (head == token::kAssistant) {
      m.role = Role::kAssistant;
    } else {
      HG_FAIL("chat ids: position ", r.position(), ": expected <|system|>, <|user|> or <|assistant|>, found ",
              describe(head));
    }
    r.skip();
    const std::string where = str_cat(role_name(m.role), " turn ", conv.messages.size());
    if (m.role == Role::kAssistant) {
      while (const auto kind = route_kind_of(r.peek())) {
        r.skip();
        Route route;
        route.kind = *kind;
        route.request = r.text(where + " route request");
        r.expect(token::kEnd, where + " route request");
        r.expect(token::kResult, where + " route");
        route.result = r.text(where + " route result");
        r.expect(token::kEnd, where + " route result");
        m.routes.push_back(std::move(route));
      }
    }
    m.content = r.text(where);
    r.expect(token::kEnd, where);
    conv.messages.push_back(std::move(m));
  }
  if (conv.messages.empty()) HG_FAIL("chat ids: no turns");
  return conv;
}

Conversation conversation_from_json(const nlohmann::json& j) {
  if (!j.is_object()) HG_FAIL("chat: expected a JSON object, found ", j.type_name());
  const auto messages = j.find("messages");
  if (messages == j.end()) HG_FAIL("chat: missing \"messages\"");
  if (!messages->is_array()) HG_FAIL("messages: expected an array, found ", messages->type_name());
  Conversation conv;
  for (size_t i = 0; i < messages->size(); ++i) {
    const nlohmann::json& mj = (*messages)[i];
    const std::string where = str_cat("messages[", i, "]");
    if (!mj.is_object()) HG_FAIL(where, ": expected an object, found ", mj.type_name());
    Message m;
    const std::string role = field_string(mj, "role", where);
    if (role == "system") {
      m.role = Role::kSystem;
    } else if (role == "user") {
      m.role = Role::kUser;
    } else if (role == "assistant") {
      m.role = Role::kAssistant;
    } else {
      HG_FAIL(where, ".role: \"", role, "\" is not one of system, user, assistant");
    }
    m.content = field_string(mj, "content", where);
    if (const auto routes = mj.find("routes"); routes != mj.end() && !routes->is_null()) {
      if (!routes->is_array()) HG_FAIL(where, ".routes: expected an array, found ", routes->type_name());
      for (size_t k = 0; k < routes->size(); ++k) {
        const nlohmann::json& rj = (*routes)[k];
        const std::string rwhere = str_cat(where, ".routes[", k, "]");
        if (!rj.is_object()) HG_FAIL(rwhere, ": expected an object, found ", rj.type_name());
        Route route;
        const std::string kind = field_string(rj, "kind", rwhere);
        const auto parsed = route_kind_from_name(kind);
        if (!parsed) HG_FAIL(rwhere, ".kind: \"", kind, "\" is not one of math, code, logic");
        route.kind = *parsed;
        route.request = field_string(rj, "request", rwhere);
        route.result = field_string(rj, "result", rwhere);
        m.routes.push_back(std::move(route));
      }
    }
    conv.messages.push_back(std::move(m));
  }
  validate(conv);
  return conv;
}

Conversation conversation_from_json_line(std::string_view line) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line);
  } catch (const nlohmann::json::parse_error& e) {
    HG_FAIL("chat: invalid JSON (", e.what(), ")");
  }
  return conversation_from_json(j);
}

nlohmann::json conversation_to_json(const Conversation& conversation) {
  nlohmann::json messages = nlohmann::json::array();
  for (const Message& m : conversation.messages) {
    nlohmann::json mj = {{"role", role_name(m.role)}, {"content", m.content}};
    if (!m.routes.empty()) {
      nlohmann::json routes = nlohmann::json::array();
      for (const Route& r : m.routes) {
        routes.push_back({{"kind", route_kind_name(r.kind)}, {"request", r.request}, {"result", r.result}});
      }
      mj["routes"] = std::move(routes);
    }
    messages.push_back(std::move(mj));
  }
  return {{"messages", std::move(messages)}};
}

}  // namespace hessgpt::chat

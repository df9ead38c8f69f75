#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/model_config.h"

namespace hessgpt {
namespace {

TEST(ModelConfig, PresetParameterCounts) {
  EXPECT_EQ(preset_config("model1").parameter_count(), 419472896);
  EXPECT_EQ(preset_config("model2").parameter_count(), 303362048);
  for (const char* name : {"model1", "model2", "small", "tiny"}) preset_config(name).validate();
}

TEST(ModelConfig, JsonRoundTrip) {
  ModelConfig c = preset_config("small");
  c.rope_scaling = YarnConfig{};
  const ModelConfig back = config_from_json(config_to_json(c));
  EXPECT_EQ(back.parameter_count(), c.parameter_count());
  ASSERT_TRUE(back.rope_scaling.has_value());
  EXPECT_EQ(back.rope_scaling->factor, 4.0);
}

void expect_error_naming(const nlohmann::json& j, const std::string& field) {
  try {
    config_from_json(j);
    FAIL() << "accepted an invalid config; expected an error naming " << field;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
  }
}

TEST(ModelConfig, InvalidShapesNameTheField) {
  nlohmann::json j = config_to_json(preset_config("tiny"));
  auto with = [&](const char* field, nlohmann::json v) {
    nlohmann::json k = j;
    k[field] = v;
    return k;
  };
  expect_error_naming(with("num_attention_heads", 3), "num_attention_heads");
  expect_error_naming(with("num_key_value_heads", 3), "num_key_value_heads");
  expect_error_naming(with("head_dim", 15), "head_dim");
  expect_error_naming(with("hidden_size", -4), "hidden_size");
  expect_error_naming(with("vocab_size", "big"), "vocab_size");
  nlohmann::json missing = j;
  missing.erase("intermediate_size");
  expect_error_naming(missing, "intermediate_size");
  expect_error_naming(with("rope_scaling", nlohmann::json{{"rope_type", "linear"}, {"factor", 2}}),
                      "rope_type");
}

}  // namespace
}  // namespace hessgpt

// hessgpt synth routing: the routing fine-tuning data for both models.
//
// Files written to OUT (chat JSONL, SPEC §5; one conversation per line):
//   model1_train.jsonl, model1_eval.jsonl   Model 1 conversations: routed turns
//       ("routes" before the final "content") mixed with non-routed factual
//       Q&A from real sources (factual_sources.h), some multi-turn, some with
//       two routes in one turn, some with a system prompt. Extra top-level
//       field "tasks": the task names in the conversation (ignored by the reader).
//   model2_train.jsonl, model2_eval.jsonl   request -> program pairs (model2_format.h)
//   model1_eval_routing.jsonl   held-out single prompts for the routing decision
//       and exact answers; routed tasks are new instances (no request occurs
//       in training) phrased like training's: {"messages": [{"role": "user", ...}],
//        "should_route": bool, "route_kind": "math"|"logic"|"code"|null,
//        "task": name, "source": "synthetic"|"factbook"|"foldoc"|"python_faq",
//        "expected_request": the normalised request ("" when not routed),
//        "expected_answer": the exact result (routed) or the source's fact,
//        "expected_final": the reference final answer}
//   model1_eval_routing_unseen.jsonl   the same, but routed tasks use
//       phrasings and words training never shows: a test of generalisation.
//   synth_manifest.json   options, counts per split/file/task/kind/source,
//       template counts; written last.
//
// Held out: eval items (but those of model1_eval_routing.jsonl's routed tasks)
// use phrasing templates, politeness wrappers and
// words that training never uses (every 4th of each list), countries,
// dictionary terms and FAQ questions of a disjoint ~20 % (stable hash), and
// no eval request (normalised, e.g. "Calculate 37*41") appears in training.
// Deterministic for a seed.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "data/synth/factual_sources.h"

namespace hessgpt::synth {

struct SynthOptions {
  std::string out_dir;
  uint64_t seed = 1234;
  size_t model1_train = 4000;  // conversations
  size_t model2_train = 4000;  // request -> program pairs
  size_t eval = 400;           // per eval file
  double factual_share = 0.4;  // share of Model 1 conversations that never route
  FactualPaths paths;
};

// Writes every file and returns the manifest (also in OUT/synth_manifest.json).
nlohmann::json run_synth_routing(const SynthOptions& options);

}  // namespace hessgpt::synth

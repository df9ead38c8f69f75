#include "infer/perplexity.h"

#include <algorithm>
#include <vector>

#include "core/error.h"

namespace hessgpt::infer {

PerplexityResult evaluate_perplexity(Session& session, std::span<const int32_t> inputs,
                                     std::span<const int32_t> targets, int64_t window) {
  HG_CHECK(window > 0, "perplexity window must be positive");
  HG_CHECK(inputs.size() == targets.size(), "perplexity: ", inputs.size(), " inputs but ",
           targets.size(), " targets");
  HG_CHECK(inputs.size() % static_cast<size_t>(window) == 0, "perplexity: ", inputs.size(),
           " ids are not whole windows of ", window);
  const int64_t v = session.config().vocab_size;
  std::vector<float> logits(static_cast<size_t>(window * v));
  PerplexityResult r;
  for (size_t w0 = 0; w0 < inputs.size(); w0 += static_cast<size_t>(window)) {
    session.reset();
    session.feed(inputs.subspan(w0, static_cast<size_t>(window)), logits.data());
    for (int64_t i = 0; i < window; ++i) {
      const int32_t target = targets[w0 + static_cast<size_t>(i)];
      if (target < 0) continue;
      HG_CHECK(target < v, "perplexity: target id ", target, " outside the vocabulary (", v, ")");
      const float* row = logits.data() + i * v;
      const float m = *std::max_element(row, row + v);
      double sum = 0.0;
      for (int64_t j = 0; j < v; ++j) sum += std::exp(static_cast<double>(row[j] - m));
      r.nll_sum += std::log(sum) + m - row[target];
      ++r.tokens;
    }
  }
  return r;
}

}  // namespace hessgpt::infer

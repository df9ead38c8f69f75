// Renders a run's metrics.jsonl as an SVG a person can open in any browser:
// loss (train and validation), learning rate and throughput against the step.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace hessgpt {

std::string render_metrics_svg(const std::vector<nlohmann::json>& records, const std::string& title);

}  // namespace hessgpt

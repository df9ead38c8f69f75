// The tables of `bench train --profile` (per step) and `bench generate
// --profile` (per decoded token): TimedBackend's entries over `units` steps or
// tokens, as text and as JSON.
#pragma once

#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "backend/timed_backend.h"

namespace hessgpt::cli {

// op, calls and milliseconds per unit, share of the unit's wall time, shape.
void print_profile(const std::vector<TimedBackend::Entry>& entries, int64_t units,
                   double seconds_per_unit, const char* unit);
// The ops' time per unit by category (TimedBackend::category), in all, and
// the unit's wall time less it.
void print_profile_categories(const std::vector<TimedBackend::Entry>& entries, int64_t units,
                              double seconds_per_unit, const char* unit);
// j["profile"] (rows of op, shape, calls_per_<unit>, ms_per_<unit>),
// j["profile_categories_ms"], j["profile_ops_ms"], j["profile_between_ops_ms"]
// (the unit's wall time less its ops': the device idle between them) and
// j["profiled"].
void add_profile_json(nlohmann::json& j, const std::vector<TimedBackend::Entry>& entries,
                      int64_t units, double seconds_per_unit, const char* unit);

}  // namespace hessgpt::cli

// SHA-256 (FIPS 180-4), so a tokenizer's checksum can be checked with the
// standard `sha256sum` tool and recorded in data manifests.
#pragma once

#include <string>
#include <string_view>

namespace hessgpt {

// Lower-case hex digest of `data` (64 characters).
std::string sha256_hex(std::string_view data);

}  // namespace hessgpt

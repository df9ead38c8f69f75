// hessgpt-rebuild-tokenizer JS OUT: the build-time step that writes the
// default tokenizer model (see model_rebuild.h). `hessgpt tokenize
// --rebuild-from` does the same from the main binary.
#include <cstdio>
#include <exception>

#include "tokenizer/model_rebuild.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s MISTRAL_TOKENIZER_JS OUT_MODEL\n", argv[0]);
    return 2;
  }
  try {
    const std::string digest = hessgpt::rebuild_mistral_model(argv[1], argv[2]);
    std::printf("wrote %s (sha256 %s)\n", argv[2], digest.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}

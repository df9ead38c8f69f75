# llama.cpp as the oracle of the GGUF export (included by tests/CMakeLists.txt):
# the prebuilt llama.cpp of npm node-llama-cpp, which scripts/setup.sh installs
# into .deps/llama.
find_program(HESSGPT_NODE node)
set(HESSGPT_LLAMA_DIR ${PROJECT_SOURCE_DIR}/.deps/llama)
if(HESSGPT_NODE)
  # Fails with a clear message when the npm package is missing (scripts/setup.sh).
  add_test(NAME gguf_llama_cpp_oracle
    COMMAND ${HESSGPT_NODE} ${CMAKE_CURRENT_LIST_DIR}/llama_cpp_oracle.mjs
            --hessgpt $<TARGET_FILE:hessgpt> --llama-dir ${HESSGPT_LLAMA_DIR})
  set_tests_properties(gguf_llama_cpp_oracle PROPERTIES LABELS io TIMEOUT 300)
else()
  message(WARNING "io: node not found; the llama.cpp oracle test is not registered")
endif()

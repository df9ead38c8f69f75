# Script tests of the tokenizer (included by tests/CMakeLists.txt).
# The node oracle: `hessgpt tokenize` must give the ids of the independent
# JavaScript tokenizer (npm mistral-tokenizer-js) on every corpus line.
find_program(HESSGPT_NODE node)
if(HESSGPT_NODE)
  # Fails with a clear message when the npm package is missing (scripts/setup.sh).
  add_test(NAME tokenizer_node_oracle
    COMMAND ${HESSGPT_NODE} ${CMAKE_CURRENT_LIST_DIR}/node_oracle.mjs
            --hessgpt $<TARGET_FILE:hessgpt>
            --tokenizer ${PROJECT_BINARY_DIR}/data/mistral-tokenizer.model
            --mistral-js ${HESSGPT_MISTRAL_JS}
            --corpus ${CMAKE_CURRENT_LIST_DIR}/corpus)
  set_tests_properties(tokenizer_node_oracle PROPERTIES LABELS tokenizer TIMEOUT 300)
else()
  message(WARNING "tokenizer: node not found; the node oracle test is not registered")
endif()

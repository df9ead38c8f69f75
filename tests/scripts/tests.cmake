# scripts/gpu-check.sh's report steps on CPU outputs (the script runs on GPU
# machines only; this keeps a script error from costing a GPU session).
add_test(NAME gpu_check_report_test
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/gpu_check_report_test.sh $<TARGET_FILE:hessgpt>
                 ${PROJECT_SOURCE_DIR} "${HESSGPT_TORCH_PYTHON}")
set_tests_properties(gpu_check_report_test PROPERTIES LABELS scripts TIMEOUT 300)

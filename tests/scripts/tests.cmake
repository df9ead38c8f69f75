# scripts/gpu-check.sh's report steps on CPU outputs (the script runs on GPU
# machines only; this keeps a script error from costing a GPU session).
add_test(NAME gpu_check_report_test
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/gpu_check_report_test.sh $<TARGET_FILE:hessgpt>
                 ${PROJECT_SOURCE_DIR} "${HESSGPT_TORCH_PYTHON}")
set_tests_properties(gpu_check_report_test PROPERTIES LABELS scripts TIMEOUT 300)

# scripts/gpu-commands.sh (the commands end to end, --device cuda against the
# CPU on a GPU machine) with the CPU on both sides: the commands, the resume,
# the BF16 run and the script's own checks work before a GPU session needs them.
add_test(NAME gpu_commands_test
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/gpu_commands_test.sh $<TARGET_FILE:hessgpt>
                 ${PROJECT_SOURCE_DIR})
set_tests_properties(gpu_commands_test PROPERTIES LABELS scripts TIMEOUT 900
                     ENVIRONMENT "OMP_WAIT_POLICY=passive")

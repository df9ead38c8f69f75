# The PyTorch oracle's own checks (needs torch + numpy for HESSGPT_TORCH_PYTHON, i.e.
# Debian's /usr/bin/python3 with python3-torch).  Skipped with a message where torch is absent.
if(HESSGPT_TORCH_PYTHON)
  execute_process(COMMAND ${HESSGPT_TORCH_PYTHON} -c "import torch, numpy"
                  RESULT_VARIABLE hessgpt_torch_import OUTPUT_QUIET ERROR_QUIET)
  if(hessgpt_torch_import EQUAL 0)
    add_test(NAME oracle_self_test
             COMMAND ${HESSGPT_TORCH_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/hessgpt_torch.py --self-test)
    set_tests_properties(oracle_self_test PROPERTIES LABELS oracle TIMEOUT 300
                         ENVIRONMENT "OMP_NUM_THREADS=1;OPENBLAS_NUM_THREADS=1")
    add_test(NAME torch_step_profile_test
             COMMAND ${HESSGPT_TORCH_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/torch_step_profile_test.py)
    set_tests_properties(torch_step_profile_test PROPERTIES LABELS oracle TIMEOUT 300)
  else()
    message(STATUS "torch not importable by ${HESSGPT_TORCH_PYTHON}: oracle_self_test not registered")
  endif()
endif()

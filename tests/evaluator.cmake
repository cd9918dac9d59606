# evaluator (issue 15): the statistics on hand-made outcomes.
oaif_test(evalstats SOURCES ${OAIF_TEST_DIR}/test_evalstats.c LIBS oaif_evalstats TIMEOUT 60)

# `oaif compare` through the real binary against a real ledger holding hand-made EvalResults.
oaif_test(compare_procs SOURCES ${OAIF_TEST_DIR}/test_compare_procs.c ${OAIF_TEST_DIR}/testproc.c
          LIBS oaif_runtime PkgConfig::JANSSON m TIMEOUT 120 LABEL integration)
target_include_directories(test_compare_procs PRIVATE ${OAIF_TEST_DIR})
add_dependencies(test_compare_procs ledger oaif)

# The evaluator with real processes on a tiny run: a ledger, a sampler, two judges, SIGKILLed once.
oaif_test(evaluator_procs SOURCES ${OAIF_TEST_DIR}/test_evaluator_procs.c ${OAIF_TEST_DIR}/tpbus.c
          ${OAIF_TEST_DIR}/testproc.c ${OAIF_TEST_DIR}/rmfixture.c LIBS oaif_evaluator oaif_nn
          TIMEOUT 300 LABEL integration)
target_include_directories(test_evaluator_procs PRIVATE ${OAIF_TEST_DIR})
add_dependencies(test_evaluator_procs ledger sampler annotator-proxy evaluator reward-scorer oaif)

# The evaluator's logic without sockets: request ids, one evaluation's numbers and record.
oaif_test(evaluator SOURCES ${OAIF_TEST_DIR}/test_evaluator.c LIBS oaif_evaluator TIMEOUT 60)

# `oaif report` against a real ledger holding hand-made records of a run; the page in headless
# Chromium (every chart drew, no script error, the numbers shown are the records').
oaif_test(report_procs SOURCES ${OAIF_TEST_DIR}/test_report_procs.c ${OAIF_TEST_DIR}/rmfixture.c
          ${OAIF_TEST_DIR}/testproc.c LIBS oaif_trainer PkgConfig::JANSSON m TIMEOUT 150
          LABEL integration)
target_include_directories(test_report_procs PRIVATE ${OAIF_TEST_DIR})
# libpng decodes the screenshot (optional: without it that part of the test says it is skipped).
pkg_check_modules(PNG IMPORTED_TARGET libpng)
if(PNG_FOUND)
  target_compile_definitions(test_report_procs PRIVATE HAVE_PNG)
  target_link_libraries(test_report_procs PRIVATE PkgConfig::PNG)
endif()
add_dependencies(test_report_procs ledger oaif)

# Every service's /metrics through `promtool check metrics` and its /healthz, on a tiny live run.
oaif_test(metrics_procs SOURCES ${OAIF_TEST_DIR}/test_metrics_procs.c ${OAIF_TEST_DIR}/rmfixture.c
          ${OAIF_TEST_DIR}/testproc.c LIBS oaif_nn oaif_runtime PkgConfig::CURL TIMEOUT 300
          LABEL integration)
target_include_directories(test_metrics_procs PRIVATE ${OAIF_TEST_DIR})
add_dependencies(test_metrics_procs ledger sampler annotator-proxy reward-scorer strength-estimator
                 evaluator trainer oaif)

# An evaluator on a ledger of 300,000 training prompts keeps its heartbeats while it reads them.
oaif_test(evaluator_load_procs SOURCES ${OAIF_TEST_DIR}/test_evaluator_load_procs.c
          ${OAIF_TEST_DIR}/testproc.c LIBS oaif_runtime TIMEOUT 180 LABEL integration)
target_include_directories(test_evaluator_load_procs PRIVATE ${OAIF_TEST_DIR})
add_dependencies(test_evaluator_load_procs ledger evaluator)

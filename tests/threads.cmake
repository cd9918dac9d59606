# Thread budgets (issue 21): `oaif up` divides the cores among the services that compute, each
# service's OpenMP runtime gets its budget (executing itself again where the environment lacks
# it), and the trainer's /metrics and step lines say where the loop's time went.
oaif_test(threads_procs SOURCES ${OAIF_TEST_DIR}/test_threads_procs.c ${OAIF_TEST_DIR}/rmfixture.c
          ${OAIF_TEST_DIR}/testproc.c ${OAIF_TEST_DIR}/tpmetrics.c LIBS oaif_nn oaif_runtime
          PkgConfig::CURL TIMEOUT 240 LABEL integration)
target_include_directories(test_threads_procs PRIVATE ${OAIF_TEST_DIR})
add_dependencies(test_threads_procs ledger sampler annotator-proxy reward-scorer trainer oaif)

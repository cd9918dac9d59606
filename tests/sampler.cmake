# sampler (issue 5): the logic without sockets, and the service with real processes (a ledger and
# sampler replicas; a fake /v1/completions server in the test process for the remote backend).
oaif_test(sampler SOURCES ${OAIF_TEST_DIR}/test_sampler.c ${OAIF_TEST_DIR}/fake_completions.c
          LIBS oaif_sampler TIMEOUT 120)
target_include_directories(test_sampler PRIVATE ${OAIF_TEST_DIR})

oaif_test(sampler_procs SOURCES ${OAIF_TEST_DIR}/test_sampler_procs.c ${OAIF_TEST_DIR}/testproc.c
          ${OAIF_TEST_DIR}/fake_completions.c LIBS oaif_sampler TIMEOUT 120 LABEL integration)
target_include_directories(test_sampler_procs PRIVATE ${OAIF_TEST_DIR})
add_dependencies(test_sampler_procs ledger sampler)

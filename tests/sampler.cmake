# sampler (issue 5): the logic without sockets, and the service with real processes (a ledger and
# sampler replicas; a fake /v1/completions server in the test process for the remote backend).
oaif_test(sampler SOURCES ${OAIF_TEST_DIR}/test_sampler.c ${OAIF_TEST_DIR}/fake_completions.c
          LIBS oaif_sampler TIMEOUT 120)
target_include_directories(test_sampler PRIVATE ${OAIF_TEST_DIR})

oaif_test(sampler_procs SOURCES ${OAIF_TEST_DIR}/test_sampler_procs.c ${OAIF_TEST_DIR}/tpbus.c ${OAIF_TEST_DIR}/testproc.c
          ${OAIF_TEST_DIR}/fake_completions.c LIBS oaif_sampler TIMEOUT 120 LABEL integration)
target_include_directories(test_sampler_procs PRIVATE ${OAIF_TEST_DIR})
add_dependencies(test_sampler_procs ledger sampler)

# bench_sampler: responses/s of the service next to the engine's raw batched decoding (not run by
# ctest):  build/tests/bench_sampler [--threads 2] [--repeat 3] [--prompts 32] [--n 2]
add_executable(bench_sampler ${OAIF_TEST_DIR}/bench/bench_sampler.c ${OAIF_TEST_DIR}/testproc.c)
target_include_directories(bench_sampler PRIVATE ${OAIF_TEST_DIR})
target_compile_definitions(bench_sampler PRIVATE OAIF_BIN_DIR="${CMAKE_BINARY_DIR}")
target_link_libraries(bench_sampler PRIVATE oaif_sampler)
add_dependencies(bench_sampler ledger sampler)

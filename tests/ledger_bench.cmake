# The ledger benchmark (issue 2, "Benchmarks"): a program, not a ctest test. Run it by hand:
#   build/tests/bench_ledger [--inflight 64] [--seconds 3] [--modes plain,curve]
add_executable(bench_ledger ${OAIF_TEST_DIR}/bench/bench_ledger.c ${OAIF_TEST_DIR}/testproc.c)
target_include_directories(bench_ledger PRIVATE ${OAIF_TEST_DIR})
# _GNU_SOURCE: sched_getaffinity and CPU_COUNT (the usable core count it prints).
target_compile_definitions(bench_ledger PRIVATE OAIF_BIN_DIR="${CMAKE_BINARY_DIR}" _GNU_SOURCE)
target_link_libraries(bench_ledger PRIVATE oaif_runtime Threads::Threads)
add_dependencies(bench_ledger ledger echo_worker)

# The ledger, the bus and the stores under it.
add_executable(echo_worker ${OAIF_TEST_DIR}/echo_worker.c)
target_link_libraries(echo_worker PRIVATE oaif_runtime)
oaif_test(ledger SOURCES ${OAIF_TEST_DIR}/test_ledger.c LIBS oaif_ledger TIMEOUT 120)
oaif_test(ledger_procs SOURCES ${OAIF_TEST_DIR}/test_ledger_procs.c ${OAIF_TEST_DIR}/testproc.c
          LIBS oaif_runtime TIMEOUT 240 LABEL integration)
target_include_directories(test_ledger_procs PRIVATE ${OAIF_TEST_DIR})
add_dependencies(test_ledger_procs ledger echo_worker)
oaif_test(cli SOURCES ${OAIF_TEST_DIR}/test_cli.c ${OAIF_TEST_DIR}/testproc.c
          LIBS oaif_runtime oaif_task TIMEOUT 120 LABEL integration)
target_include_directories(test_cli PRIVATE ${OAIF_TEST_DIR})
add_dependencies(test_cli ledger oaif)
oaif_test(ledger_hostile_procs SOURCES ${OAIF_TEST_DIR}/test_ledger_hostile_procs.c
          ${OAIF_TEST_DIR}/testproc.c ${OAIF_TEST_DIR}/tpmetrics.c LIBS oaif_runtime TIMEOUT 120
          LABEL integration)
target_include_directories(test_ledger_hostile_procs PRIVATE ${OAIF_TEST_DIR})
add_dependencies(test_ledger_hostile_procs ledger echo_worker annotator-proxy)

# The ledger, the bus and the stores under it.
add_executable(echo_worker ${OAIF_TEST_DIR}/echo_worker.c)
target_link_libraries(echo_worker PRIVATE oaif_common)
oaif_test(ledger SOURCES ${OAIF_TEST_DIR}/test_ledger.c LIBS oaif_ledger TIMEOUT 120)

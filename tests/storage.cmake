# The ledger's store under damage and a full disk (test_storage_procs.c).
oaif_test(storage_procs SOURCES ${OAIF_TEST_DIR}/test_storage_procs.c ${OAIF_TEST_DIR}/testproc.c
          ${OAIF_TEST_DIR}/tpmetrics.c LIBS oaif_runtime TIMEOUT 120 LABEL integration)
target_include_directories(test_storage_procs PRIVATE ${OAIF_TEST_DIR})
add_dependencies(test_storage_procs ledger oaif)

# Preference data in and out (issue 13): the readers and writers of services/oaif/pairs.c on small
# hand-made files (tests/fixtures/pairs), and `oaif import pairs` / `oaif export pairs --format
# trl|hh` through the real binary against a real ledger process.
oaif_test(import_pairs SOURCES ${OAIF_TEST_DIR}/test_import_pairs.c LIBS oaif_cli TIMEOUT 60)
oaif_test(import_pairs_cli SOURCES ${OAIF_TEST_DIR}/test_import_pairs_cli.c
          ${OAIF_TEST_DIR}/testproc.c LIBS oaif_runtime TIMEOUT 300 LABEL integration)
target_include_directories(test_import_pairs_cli PRIVATE ${OAIF_TEST_DIR})
add_dependencies(test_import_pairs_cli ledger oaif)

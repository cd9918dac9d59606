# SFT of the built-in policy and `oaif sft` (services/trainer): a short run that learns, runs that
# are deterministic by seed and cached, publishing to a real ledger process, bad input files.
oaif_test(sft SOURCES ${OAIF_TEST_DIR}/test_sft.c ${OAIF_TEST_DIR}/testproc.c
          LIBS oaif_trainer TIMEOUT 300 LABEL integration)
target_include_directories(test_sft PRIVATE ${OAIF_TEST_DIR})
add_dependencies(test_sft ledger oaif)

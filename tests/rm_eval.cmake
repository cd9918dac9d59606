# `oaif rm eval` (issue 13): two tiny members trained by `oaif rm train` against a real ledger,
# then their accuracy as the verb prints it against what the test computes with the scorer;
# noise-free labels and the two-judge subset; bad flags.
oaif_test(rm_eval_procs SOURCES ${OAIF_TEST_DIR}/test_rm_eval_procs.c ${OAIF_TEST_DIR}/rmfixture.c
          ${OAIF_TEST_DIR}/testproc.c
          LIBS oaif_trainer oaif_reward_scorer TIMEOUT 300 LABEL integration)
target_include_directories(test_rm_eval_procs PRIVATE ${OAIF_TEST_DIR})
add_dependencies(test_rm_eval_procs ledger oaif)

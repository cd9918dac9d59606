# `oaif rm features` (issue 13): the PCA it projects with (common/nn/pca.c) on hand-made points;
# the command as a real process on a tiny member trained by `oaif rm train` against a real ledger.
oaif_test(nn_pca SOURCES ${OAIF_TEST_DIR}/test_nn_pca.c LIBS oaif_nn)
oaif_test(rm_features_procs SOURCES ${OAIF_TEST_DIR}/test_rm_features_procs.c
          ${OAIF_TEST_DIR}/rmfixture.c ${OAIF_TEST_DIR}/testproc.c LIBS oaif_trainer
          oaif_reward_scorer TIMEOUT 300 LABEL integration)
target_include_directories(test_rm_features_procs PRIVATE ${OAIF_TEST_DIR})
add_dependencies(test_rm_features_procs ledger oaif)

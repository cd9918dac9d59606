# `oaif rm features` (issue 13): the PCA it projects with (common/nn/pca.c) on hand-made points;
# the command as a real process on a tiny member trained by `oaif rm train` against a real ledger.
oaif_test(nn_pca SOURCES ${OAIF_TEST_DIR}/test_nn_pca.c LIBS oaif_nn)

# evaluator (issue 15): the statistics on hand-made outcomes.
oaif_test(evalstats SOURCES ${OAIF_TEST_DIR}/test_evalstats.c LIBS oaif_evalstats TIMEOUT 60)

# strength-estimator (issue 14): the logic without sockets, and the service with real processes (a
# ledger, reward-scorer and strength-estimator processes, driven through a real bus client).
oaif_test(strength_estimator SOURCES ${OAIF_TEST_DIR}/test_strength_estimator.c
          LIBS oaif_strength_estimator TIMEOUT 60)

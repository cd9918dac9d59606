# strength-estimator (issue 14): the logic without sockets, and the service with real processes (a
# ledger, reward-scorer and strength-estimator processes, driven through a real bus client).
oaif_test(strength_estimator SOURCES ${OAIF_TEST_DIR}/test_strength_estimator.c
          LIBS oaif_strength_estimator TIMEOUT 60)

oaif_test(strength_estimator_procs SOURCES ${OAIF_TEST_DIR}/test_strength_estimator_procs.c ${OAIF_TEST_DIR}/tpbus.c ${OAIF_TEST_DIR}/tpmetrics.c
          ${OAIF_TEST_DIR}/testproc.c LIBS oaif_strength_estimator oaif_nn PkgConfig::CURL
          TIMEOUT 420 LABEL integration)
target_include_directories(test_strength_estimator_procs PRIVATE ${OAIF_TEST_DIR})
add_dependencies(test_strength_estimator_procs ledger reward-scorer strength-estimator)

# Iterative rounds of `oaif run` (issue 14, services/oaif/rounds.h): three rounds through real
# processes (oaif up, the trainer, oaif rm train with and without MetaRM) on a tiny model.
oaif_test(rounds_procs SOURCES ${OAIF_TEST_DIR}/test_rounds_procs.c ${OAIF_TEST_DIR}/rmfixture.c
          ${OAIF_TEST_DIR}/testproc.c LIBS oaif_trainer PkgConfig::JANSSON TIMEOUT 600
          LABEL integration)
target_include_directories(test_rounds_procs PRIVATE ${OAIF_TEST_DIR})
add_dependencies(test_rounds_procs ledger sampler annotator-proxy reward-scorer strength-estimator
                 evaluator trainer oaif)

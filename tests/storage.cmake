# The ledger's store under damage and a full disk (test_storage_procs.c).
oaif_test(storage_procs SOURCES ${OAIF_TEST_DIR}/test_storage_procs.c ${OAIF_TEST_DIR}/testproc.c
          ${OAIF_TEST_DIR}/tpmetrics.c LIBS oaif_runtime TIMEOUT 120 LABEL integration)
target_include_directories(test_storage_procs PRIVATE ${OAIF_TEST_DIR})
add_dependencies(test_storage_procs ledger oaif)
# What a careless user did: a directory as input, no ledger, keys twice, an allow-list alone.
oaif_test(careless_procs SOURCES ${OAIF_TEST_DIR}/test_careless_procs.c ${OAIF_TEST_DIR}/testproc.c
          LIBS oaif_runtime TIMEOUT 60 LABEL integration)
target_include_directories(test_careless_procs PRIVATE ${OAIF_TEST_DIR})
add_dependencies(test_careless_procs ledger oaif trainer)
# A run that can never succeed stops: the trainer backs off and stops on repeated sample failures.
# A judge that always ties (the fake judge answering "1" in both orders) stops the run too.
oaif_test(trainer_backoff_procs SOURCES ${OAIF_TEST_DIR}/test_trainer_backoff_procs.c
          ${OAIF_TEST_DIR}/testproc.c ${OAIF_TEST_DIR}/rmfixture.c ${OAIF_TEST_DIR}/fake_judge_run.c
          LIBS oaif_trainer PkgConfig::JANSSON TIMEOUT 120 LABEL integration)
target_include_directories(test_trainer_backoff_procs PRIVATE ${OAIF_TEST_DIR})
target_compile_definitions(test_trainer_backoff_procs PRIVATE
                           FAKE_JUDGE_BIN="$<TARGET_FILE:fake_judge>"
                           JUDGE_TEMPLATES="${CMAKE_SOURCE_DIR}/services/annotator-proxy/templates")
add_dependencies(test_trainer_backoff_procs ledger sampler trainer oaif annotator-proxy fake_judge)

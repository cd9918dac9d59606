# annotator-proxy (issue 4) with real processes: the ledger, annotator-proxy replicas, the fake
# judge and `oaif judge try`.
oaif_test(annotator_procs SOURCES ${OAIF_TEST_DIR}/test_annotator_procs.c ${OAIF_TEST_DIR}/tpbus.c ${OAIF_TEST_DIR}/testproc.c
          ${OAIF_TEST_DIR}/fake_judge_run.c LIBS oaif_runtime PkgConfig::JANSSON TIMEOUT 120
          LABEL integration)
target_include_directories(test_annotator_procs PRIVATE ${OAIF_TEST_DIR})
target_compile_definitions(test_annotator_procs PRIVATE FAKE_JUDGE_BIN="$<TARGET_FILE:fake_judge>"
                           JUDGE_TEMPLATES="${CMAKE_SOURCE_DIR}/services/annotator-proxy/templates")
add_dependencies(test_annotator_procs ledger annotator-proxy oaif fake_judge)

# the service's pieces without processes: options, the rules adapter, the score reply parser
oaif_test(annotator_service SOURCES ${OAIF_TEST_DIR}/test_annotator_service.c LIBS oaif_annotator
          TIMEOUT 60)
target_compile_definitions(test_annotator_service PRIVATE
                           JUDGE_TEMPLATES="${CMAKE_SOURCE_DIR}/services/annotator-proxy/templates")

# oaif health: the container image's HEALTHCHECK (deploy/Dockerfile) against a real ledger.
oaif_test(health_procs SOURCES ${OAIF_TEST_DIR}/test_health_procs.c ${OAIF_TEST_DIR}/testproc.c
          LIBS oaif_runtime TIMEOUT 60 LABEL integration)
target_include_directories(test_health_procs PRIVATE ${OAIF_TEST_DIR})
add_dependencies(test_health_procs ledger oaif)

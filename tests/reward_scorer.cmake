# reward-scorer (issue 13): the logic without sockets, and the service with real processes (a
# ledger and reward-scorer replicas, through a real bus client).
oaif_test(reward_scorer SOURCES ${OAIF_TEST_DIR}/test_reward_scorer.c LIBS oaif_reward_scorer
          TIMEOUT 120)

oaif_test(reward_scorer_procs SOURCES ${OAIF_TEST_DIR}/test_reward_scorer_procs.c ${OAIF_TEST_DIR}/tpbus.c ${OAIF_TEST_DIR}/tpmetrics.c
          ${OAIF_TEST_DIR}/testproc.c LIBS oaif_reward_scorer PkgConfig::CURL TIMEOUT 180
          LABEL integration)
target_include_directories(test_reward_scorer_procs PRIVATE ${OAIF_TEST_DIR})
add_dependencies(test_reward_scorer_procs ledger reward-scorer)

# test_annotator_procs (annotator_procs.cmake, included before this file) runs its reward-model
# backend against this service: build it first.
if(TARGET test_annotator_procs)
  add_dependencies(test_annotator_procs reward-scorer)
endif()

# The trainer's online loop and its preference step.
oaif_test(trainer_pref SOURCES ${OAIF_TEST_DIR}/test_trainer_pref.c LIBS oaif_trainer)
oaif_test(trainer_procs SOURCES ${OAIF_TEST_DIR}/test_trainer_procs.c ${OAIF_TEST_DIR}/testproc.c
          LIBS oaif_trainer TIMEOUT 600 LABEL integration)
target_include_directories(test_trainer_procs PRIVATE ${OAIF_TEST_DIR})
add_dependencies(test_trainer_procs ledger sampler trainer oaif)
# Evaluation against the SFT model (trainer_compare) and `oaif eval`, on two short SFT runs.
oaif_test(evaluate SOURCES ${OAIF_TEST_DIR}/test_evaluate.c ${OAIF_TEST_DIR}/testproc.c
          LIBS oaif_trainer TIMEOUT 300 LABEL integration)
target_include_directories(test_evaluate PRIVATE ${OAIF_TEST_DIR})
add_dependencies(test_evaluate oaif)
# Preference strength in the online loop (issue 14): a ledger, sampler, reward-scorer,
# strength-estimator and the trainer with trainer.strength.enabled; `oaif audit` lists the actions.
oaif_test(trainer_strength_procs SOURCES ${OAIF_TEST_DIR}/test_trainer_strength_procs.c ${OAIF_TEST_DIR}/tpbus.c ${OAIF_TEST_DIR}/tpmetrics.c
          ${OAIF_TEST_DIR}/testproc.c LIBS oaif_trainer PkgConfig::CURL TIMEOUT 600
          LABEL integration)
target_include_directories(test_trainer_strength_procs PRIVATE ${OAIF_TEST_DIR})
add_dependencies(test_trainer_strength_procs ledger sampler reward-scorer strength-estimator
                 trainer oaif)

# The trainer's online loop and its preference step.
oaif_test(trainer_pref SOURCES ${OAIF_TEST_DIR}/test_trainer_pref.c LIBS oaif_trainer)

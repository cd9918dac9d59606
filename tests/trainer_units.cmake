# Unit tests of the trainer's smaller modules (services/trainer), no processes: the files of a
# policy checkpoint (ckptfiles.h), why a pair is set aside (skip.h).
oaif_test(trainer_ckpt SOURCES ${OAIF_TEST_DIR}/test_trainer_ckpt.c LIBS oaif_trainer)
oaif_test(trainer_skip SOURCES ${OAIF_TEST_DIR}/test_trainer_skip.c LIBS oaif_trainer)
# What a pair's preference strength does to its loss (strength.h, pref.h's trainer_pref_loss).
oaif_test(trainer_strength SOURCES ${OAIF_TEST_DIR}/test_trainer_strength.c LIBS oaif_trainer)

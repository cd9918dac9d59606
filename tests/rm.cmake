# Reward-model training (issue 13, services/trainer/rm*.h and `oaif rm train`): the loss assembly,
# the data, a tiny member that learns and resumes, without processes; then members as real
# processes against a real ledger: killed and resumed to the same weights, two seeds, bad flags.
find_package(Threads REQUIRED)
oaif_test(rm SOURCES ${OAIF_TEST_DIR}/test_rm.c LIBS oaif_trainer Threads::Threads TIMEOUT 300)
oaif_test(rm_procs SOURCES ${OAIF_TEST_DIR}/test_rm_procs.c ${OAIF_TEST_DIR}/testproc.c
          LIBS oaif_trainer TIMEOUT 300 LABEL integration)
target_include_directories(test_rm_procs PRIVATE ${OAIF_TEST_DIR})
add_dependencies(test_rm_procs ledger oaif)
# MetaRM (services/trainer/rm_meta.h): J and its gradient, the step against the PyTorch fixture
# of tests/rm_meta_reference.py.
oaif_test(rm_meta SOURCES ${OAIF_TEST_DIR}/test_rm_meta.c ${OAIF_TEST_DIR}/stfixture.c
          LIBS oaif_trainer)
target_include_directories(test_rm_meta PRIVATE ${OAIF_TEST_DIR})
oaif_test(rm_meta_procs SOURCES ${OAIF_TEST_DIR}/test_rm_meta_procs.c ${OAIF_TEST_DIR}/rmfixture.c
          ${OAIF_TEST_DIR}/testproc.c LIBS oaif_trainer TIMEOUT 300 LABEL integration)
target_include_directories(test_rm_meta_procs PRIVATE ${OAIF_TEST_DIR})
add_dependencies(test_rm_meta_procs ledger oaif sampler)

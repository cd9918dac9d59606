# The engine (common/nn): one cmocka binary per module. Fixtures in tests/fixtures/nn are written
# by tests/nn_reference.py (PyTorch); the tests only read them.
oaif_test(nn_model SOURCES ${OAIF_TEST_DIR}/test_nn_model.c LIBS oaif_nn)
oaif_test(nn_loss SOURCES ${OAIF_TEST_DIR}/test_nn_loss.c LIBS oaif_nn)
oaif_test(nn_optim SOURCES ${OAIF_TEST_DIR}/test_nn_optim.c LIBS oaif_nn)
oaif_test(nn_reference SOURCES ${OAIF_TEST_DIR}/test_nn_reference.c ${OAIF_TEST_DIR}/stfixture.c
          LIBS oaif_nn)
target_include_directories(test_nn_reference PRIVATE ${OAIF_TEST_DIR})
oaif_test(nn_checkpoint SOURCES ${OAIF_TEST_DIR}/test_nn_checkpoint.c LIBS oaif_nn)
oaif_test(nn_sample SOURCES ${OAIF_TEST_DIR}/test_nn_sample.c LIBS oaif_nn)
# The CLI needs the tokenizers (common/nn/tokenizer.c, from the engineio branch).
if(EXISTS ${CMAKE_SOURCE_DIR}/common/nn/tokenizer.c)
  oaif_test(nn_cli SOURCES ${OAIF_TEST_DIR}/test_nn_cli.c LIBS oaif_nn)
endif()
oaif_test(nn_rope SOURCES ${OAIF_TEST_DIR}/test_nn_rope.c ${OAIF_TEST_DIR}/stfixture.c LIBS oaif_nn)
target_include_directories(test_nn_rope PRIVATE ${OAIF_TEST_DIR})

# common/nn file formats and tokenizers: safetensors, config.json, tokenizer.json.
oaif_test(nn_safetensors SOURCES test_nn_safetensors.c LIBS oaif_nn)
oaif_test(nn_config SOURCES test_nn_config.c LIBS oaif_nn)
if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/test_nn_tokenizer.c)
  oaif_test(nn_tokenizer SOURCES test_nn_tokenizer.c LIBS oaif_nn)
endif()

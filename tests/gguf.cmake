# GGUF export (common/nn/gguf.c), read back by tests/gguf_check.js with @huggingface/gguf from
# npm, which deploy/setup.sh installs under the build directory (BUILD_DIR/npm); without node or
# the package the reader's part is skipped, saying why.
oaif_test(nn_gguf SOURCES ${OAIF_TEST_DIR}/test_nn_gguf.c LIBS oaif_nn TIMEOUT 120)

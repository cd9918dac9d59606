# judge (issue 4): http client, sha256, judge wire formats and templates, the annotator, the fake
# judge server they are tested against, and the judge benchmark.
add_executable(fake_judge ${CMAKE_CURRENT_LIST_DIR}/fake_judge.c)
target_link_libraries(fake_judge PRIVATE oaif_runtime PkgConfig::MHD PkgConfig::JANSSON
                      Threads::Threads m)

set(_judge_test_defs FAKE_JUDGE_BIN="$<TARGET_FILE:fake_judge>"
                     JUDGE_TEMPLATES="${CMAKE_SOURCE_DIR}/services/annotator-proxy/templates")

oaif_test(sha256 SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_sha256.c LIBS oaif_ground TIMEOUT 60)

oaif_test(http SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_http.c ${CMAKE_CURRENT_LIST_DIR}/fake_judge_run.c
          LIBS oaif_runtime PkgConfig::JANSSON TIMEOUT 120)
target_compile_definitions(test_http PRIVATE ${_judge_test_defs})
add_dependencies(test_http fake_judge)

oaif_test(annotator_wire SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_annotator_wire.c
          LIBS oaif_annotator TIMEOUT 60)
target_compile_definitions(test_annotator_wire PRIVATE ${_judge_test_defs})

oaif_test(annotator SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_annotator.c
          ${CMAKE_CURRENT_LIST_DIR}/fake_judge_run.c LIBS oaif_annotator TIMEOUT 120)
target_compile_definitions(test_annotator PRIVATE ${_judge_test_defs})
add_dependencies(test_annotator fake_judge)

# the benchmark: built, not run by ctest (`build/tests/bench_judge`)
if(EXISTS ${CMAKE_CURRENT_LIST_DIR}/bench/bench_judge.c)
  add_executable(bench_judge ${CMAKE_CURRENT_LIST_DIR}/bench/bench_judge.c
                 ${CMAKE_CURRENT_LIST_DIR}/fake_judge_run.c)
  target_link_libraries(bench_judge PRIVATE oaif_annotator Threads::Threads)
  target_compile_definitions(bench_judge PRIVATE ${_judge_test_defs})
  add_dependencies(bench_judge fake_judge)
endif()

# the judges against replies as the providers' references show them (issue 18): an in-process
# server replaying tests/fixtures/judge-replies/, kept apart from the fake judge
oaif_test(judge_conformance SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_judge_conformance.c
          ${CMAKE_CURRENT_LIST_DIR}/judge_conformance_server.c
          LIBS oaif_annotator oaif_sampler PkgConfig::MHD PkgConfig::JANSSON Threads::Threads z
          TIMEOUT 60)
target_compile_definitions(test_judge_conformance PRIVATE ${_judge_test_defs}
                           JUDGE_REPLIES="${CMAKE_CURRENT_LIST_DIR}/fixtures/judge-replies")

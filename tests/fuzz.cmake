# tests/fuzz: libFuzzer targets for every decoder of outside bytes (tests/fuzz/fuzz.h says what a
# target is). In every build each target's seeds and crash regressions are replayed by a ctest,
# test_fuzz_<name> (replay.c); configured with CC=clang and -DOAIF_FUZZ=ON the targets are also
# built as fuzzers, fuzz_<name> (`cmake --build B --target fuzz`), which tests/fuzz/smoke.sh
# (CI) and tests/fuzz/run.sh (long runs) drive.
set(OAIF_FUZZ_DIR ${CMAKE_CURRENT_LIST_DIR}/fuzz)
# the importers' sources alone: the whole oaif_cli library would drag every service in
set(_cli ${CMAKE_SOURCE_DIR}/services/oaif)

function(oaif_fuzz name)
  cmake_parse_arguments(F "" "" "SOURCES;LIBS;INCLUDES" ${ARGN})
  set(_src ${OAIF_FUZZ_DIR}/fuzz_${name}.c ${OAIF_FUZZ_DIR}/fuzzutil.c ${F_SOURCES})
  oaif_test(fuzz_${name} SOURCES ${OAIF_FUZZ_DIR}/replay.c ${_src} LIBS ${F_LIBS} TIMEOUT 120)
  target_include_directories(test_fuzz_${name} PRIVATE ${OAIF_FUZZ_DIR} ${F_INCLUDES})
  target_compile_definitions(test_fuzz_${name} PRIVATE
    FUZZ_DIRS="${OAIF_FUZZ_DIR}/corpus/${name}:${OAIF_FUZZ_DIR}/regressions/${name}")
  if(OAIF_FUZZ)
    add_executable(fuzz_${name} ${_src})
    target_include_directories(fuzz_${name} PRIVATE ${OAIF_FUZZ_DIR} ${F_INCLUDES})
    target_link_libraries(fuzz_${name} PRIVATE ${F_LIBS})
    target_link_options(fuzz_${name} PRIVATE -fsanitize=fuzzer)
    add_dependencies(fuzz fuzz_${name})
  endif()
endfunction()

if(OAIF_FUZZ)
  add_custom_target(fuzz)
  add_executable(fuzz_ledger_seeds ${OAIF_FUZZ_DIR}/ledger_seeds.c)
  target_link_libraries(fuzz_ledger_seeds PRIVATE oaif_runtime)
endif()
oaif_fuzz(wire LIBS oaif_annotator)
oaif_fuzz(tokenizer LIBS oaif_nn)
oaif_fuzz(safetensors LIBS oaif_nn)
oaif_fuzz(config LIBS oaif_nn)
# the ledger's option table without the ledger (and RocksDB)
oaif_fuzz(cfg SOURCES ${CMAKE_SOURCE_DIR}/services/ledger/ledger_opts.c
          INCLUDES ${CMAKE_SOURCE_DIR}/services/ledger LIBS oaif_annotator)
oaif_fuzz(import_prompts SOURCES ${_cli}/cli.c ${_cli}/prompts.c INCLUDES ${_cli}
          LIBS oaif_runtime PkgConfig::JANSSON)
oaif_fuzz(import_pairs SOURCES ${_cli}/pairs.c INCLUDES ${_cli} LIBS oaif_runtime
          PkgConfig::JANSSON)
oaif_fuzz(import_evals SOURCES ${_cli}/cli.c ${_cli}/evals.c ${_cli}/pbjson.c INCLUDES ${_cli}
          LIBS oaif_runtime PkgConfig::JANSSON)
oaif_fuzz(ledger LIBS oaif_ledger)
oaif_fuzz(buscheck LIBS oaif_runtime)
oaif_fuzz(sampler_remote LIBS oaif_sampler)

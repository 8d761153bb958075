# Fuzzing the decoders. The committed corpora are replayed through the same
# invariant checks in every build (fuzz/test_corpus); the libFuzzer targets
# themselves need clang and TAO_FUZZ=ON.
tao_test(fuzz/test_corpus SOURCES fuzz/fuzz_checks.c LABELS unit fuzz)

if(TAO_FUZZ)
    if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
        message(FATAL_ERROR "TAO_FUZZ=ON needs clang: configure with CC=clang")
    endif()
    # The codec sources are compiled into each target, not taken from the
    # library, so that libFuzzer's coverage instrumentation reaches them.
    set(fuzz_flags -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all)
    foreach(name tlv lenfield line resp http proxy)
        add_executable(fuzz_${name} fuzz/fuzz_${name}.c fuzz/fuzz_checks.c
                       ${PROJECT_SOURCE_DIR}/codec/tlv.c ${PROJECT_SOURCE_DIR}/codec/lenfield.c
                       ${PROJECT_SOURCE_DIR}/codec/line.c ${PROJECT_SOURCE_DIR}/codec/resp.c
                       ${PROJECT_SOURCE_DIR}/codec/http1.c ${PROJECT_SOURCE_DIR}/codec/proxy.c)
        target_include_directories(fuzz_${name} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}
                                   ${PROJECT_SOURCE_DIR} ${PROJECT_SOURCE_DIR}/api)
        target_compile_options(fuzz_${name} PRIVATE ${fuzz_flags})
        target_link_options(fuzz_${name} PRIVATE ${fuzz_flags})
        # Without mutation (-runs=0) the target just runs its corpus once.
        add_test(NAME fuzz/fuzz_${name} COMMAND fuzz_${name} -runs=0
                 ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/${name})
        set_tests_properties(fuzz/fuzz_${name} PROPERTIES TIMEOUT 120 LABELS fuzz)
    endforeach()
endif()

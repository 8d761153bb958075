# Benchmarks are only meaningful on the allocator they claim to use: check
# that the programs built with tao_use_jemalloc() really load libjemalloc.
if(TARGET tao-bench-core AND TAO_WITH_JEMALLOC)
    add_test(NAME perf/jemalloc_linked
             COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/check_needed.sh
                     $<TARGET_FILE:tao-bench-core> libjemalloc)
    set_tests_properties(perf/jemalloc_linked PROPERTIES TIMEOUT 30 LABELS "perf;unit")
endif()

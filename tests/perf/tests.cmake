# Benchmarks are only meaningful on the allocator they claim to use: check
# that the programs built with tao_use_jemalloc() really load libjemalloc.
if(TARGET tao-bench-core AND TAO_WITH_JEMALLOC)
    add_test(NAME perf/jemalloc_linked
             COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/check_needed.sh
                     $<TARGET_FILE:tao-bench-core> libjemalloc)
    set_tests_properties(perf/jemalloc_linked PROPERTIES TIMEOUT 30 LABELS "perf;unit")
endif()

# The load generator's pure parts: payloads, sequence tracking, histogram,
# reports.
if(TARGET tao_loadgen_core)
    foreach(t payload seqtrack hist report)
        tao_test(perf/loadgen/test_${t} LABELS perf unit)
        target_link_libraries(perf_loadgen_test_${t} PRIVATE tao_loadgen_core)
    endforeach()
endif()

# The load generator against a deliberately faulty echo (every fault must be
# noticed and named) and against the real echo server (no error at all).
# The perf tests pin to CPUs and time things: one at a time.
if(TARGET tao-loadgen AND TARGET tao-faulty-echo AND TARGET tao-echo-server)
    tao_backend_test(NAME perf/loadgen_faults TIMEOUT 120 LABELS perf
                     PROPERTIES RESOURCE_LOCK perf_cpus
                     COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/loadgen_faults.sh
                             $<TARGET_FILE:tao-loadgen> $<TARGET_FILE:tao-faulty-echo>
                             $<TARGET_FILE:tao-echo-server>)
endif()

# scripts/perf.sh --smoke on this build's programs: table, report and files.
if(TARGET tao-loadgen AND TARGET tao-epoll-echo AND TARGET tao-uring-echo
   AND TARGET tao-echo-server)
    tao_backend_test(NAME perf/perf_smoke TIMEOUT 180 LABELS perf
                     PROPERTIES RESOURCE_LOCK perf_cpus
                     COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/perf_smoke.sh ${PROJECT_SOURCE_DIR}
                             ${PROJECT_BINARY_DIR})
endif()

# The load generator and the baselines are measured on jemalloc too.
foreach(p tao-loadgen tao-epoll-echo tao-uring-echo)
    if(TARGET ${p} AND TAO_WITH_JEMALLOC)
        add_test(NAME perf/jemalloc_linked_${p}
                 COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/check_needed.sh $<TARGET_FILE:${p}>
                         libjemalloc)
        set_tests_properties(perf/jemalloc_linked_${p} PROPERTIES TIMEOUT 30 LABELS "perf;unit")
    endif()
endforeach()

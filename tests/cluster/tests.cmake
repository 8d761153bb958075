# Several hosts in one machine: network namespaces, HAProxy in front of
# three echo servers with the PROXY protocol, tao-loadgen through it, one
# server killed mid-run. Needs root (CAP_SYS_ADMIN for the namespaces),
# ip and haproxy; skips with the reason otherwise. One entry on the default
# backend: what it tests is the servers behind a balancer, not a backend.
# It runs in the debug and asan presets (real HAProxy headers through the
# instrumented parser; the surviving servers must stop cleanly), not beside
# the perf tests, which time things on pinned CPUs.
if(TARGET tao-echo-server AND TARGET tao-loadgen)
    add_test(NAME cluster/haproxy
             COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/run_cluster.sh
                     $<TARGET_FILE:tao-echo-server> $<TARGET_FILE:tao-loadgen>)
    set_tests_properties(cluster/haproxy PROPERTIES TIMEOUT 150 SKIP_RETURN_CODE 77
                         LABELS cluster RESOURCE_LOCK perf_cpus)
endif()

# The example programs, run end to end over 127.0.0.1 by run_examples.sh:
# one ctest entry per program pair. Needs the examples to be built.
if(TARGET tao-echo-server)
    set(tao_example_programs
        $<TARGET_FILE:tao-echo-server> $<TARGET_FILE:tao-echo-client>
        $<TARGET_FILE:tao-chat-server> $<TARGET_FILE:tao-chat-client>
        $<TARGET_FILE:tao-pingpong-server> $<TARGET_FILE:tao-pingpong-client>
        $<TARGET_FILE:tao-timer>)
    foreach(case help echo chat chatflood pingpong timer tls proxy)
        tao_backend_test(NAME examples/${case} TIMEOUT 120 LABELS examples
                         ENVIRONMENT "TAO_SANITIZE=${TAO_SANITIZE}"
                         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/run_examples.sh ${case}
                                 ${tao_example_programs})
    endforeach()

    # Restarts under a connection storm: systemd-socket-activate, then
    # hand-over from generation to generation; hand-over alone; and a socket
    # held outside the server while it restarts, as systemd does.
    foreach(case activate handover systemd)
        tao_backend_test(NAME examples/restart-${case} TIMEOUT 300 LABELS examples
                         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/run_restart.sh ${case}
                                 $<TARGET_FILE:tao-echo-server>)
    endforeach()

    # tao-kv-server against redis-cli, redis-server and redis-benchmark.
    tao_backend_test(NAME examples/kv TIMEOUT 600 LABELS examples
                     COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/run_kv.sh
                             $<TARGET_FILE:tao-kv-server>)

    # tao-http-server against curl and wrk.
    tao_backend_test(NAME examples/http TIMEOUT 300 LABELS examples
                     COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/run_http.sh
                             $<TARGET_FILE:tao-http-server>)

    # The examples where io_uring is refused: the backend is chosen, not set.
    if(TARGET tao-loadgen)
        add_test(NAME examples/seccomp
                 COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/run_examples.sh seccomp
                         ${tao_example_programs} $<TARGET_FILE:tao-no-io-uring>
                         $<TARGET_FILE:tao-loadgen>)
        set_tests_properties(examples/seccomp PROPERTIES TIMEOUT 180 SKIP_RETURN_CODE 77
                             LABELS "examples;epoll" ENVIRONMENT "TAO_SANITIZE=${TAO_SANITIZE}")
    endif()
endif()

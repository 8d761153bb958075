# Micro-benchmarks of the pure core (timing wheel, codecs): measures, asserts nothing.
add_executable(tao-bench-core bench_core.c)
target_link_libraries(tao-bench-core PRIVATE tao_internal)
tao_use_jemalloc(tao-bench-core)

# Timer precision: the distribution of fire delays on a running server.
add_executable(tao-bench-timers bench_timers.c)
target_link_libraries(tao-bench-timers PRIVATE tao_static)
tao_use_jemalloc(tao-bench-timers)

# TLS next to plain TCP: echo throughput and handshakes per second.
add_executable(tao-bench-tls bench_tls.c)
target_link_libraries(tao-bench-tls PRIVATE tao_static)
tao_use_jemalloc(tao-bench-tls)

# Micro-benchmarks of the pure core (timing wheel, codecs): measures, asserts nothing.
add_executable(tao-bench-core bench_core.c)
target_link_libraries(tao-bench-core PRIVATE tao_internal)
tao_use_jemalloc(tao-bench-core)

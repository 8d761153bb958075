# The library's sources, in reading order (see ARCHITECTURE.md).
set(TAO_SOURCES
    engine/common.c
    engine/fault.c
    codec/tlv.c
    codec/lenfield.c
    codec/line.c
    codec/registry.c
    engine/timerwheel.c
)
list(APPEND TAO_SOURCES
    engine/addr.c
    engine/bufring.c
    engine/uring_why.c
    engine/loop.c
    engine/listener.c
    engine/conn.c
    engine/keepalive.c
    engine/close.c
    engine/outq.c
    engine/server.c
)
list(APPEND TAO_SOURCES
    engine/runtime.c
    engine/worker.c
    engine/timer.c
    engine/endpoint.c
    engine/client.c
    engine/tls.c
    engine/metrics.c
)

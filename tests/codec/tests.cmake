# The pure codec layer and the message registry: no sockets, no ring.
tao_test(codec/test_tlv SOURCES util/t_codec.c LABELS unit codec)
tao_test(codec/test_lenfield SOURCES util/t_codec.c LABELS unit codec)
tao_test(codec/test_line SOURCES util/t_codec.c LABELS unit codec)
tao_test(codec/test_registry LABELS unit codec)
tao_test(codec/test_resp SOURCES util/t_codec.c LABELS unit codec)
tao_test(codec/test_http SOURCES util/t_codec.c LABELS unit codec)
tao_test(codec/test_proxy LABELS unit codec)

# h2o-style unit tests: each includes the engine source it tests, so static
# helpers are in reach, and drives its pure logic without sockets, threads
# or clocks. The test's own definitions of the file's global functions come
# first on the link line, so the archive member with the same symbols
# (libtao.a's outq.o, addr.o, ...) is never pulled in: no duplicates.
tao_test(unit/test_outq LABELS unit)
tao_test(unit/test_addr LABELS unit)
tao_test(unit/test_keepalive LABELS unit)
tao_test(unit/test_idmap LABELS unit)

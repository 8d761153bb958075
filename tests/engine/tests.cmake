tao_test(engine/test_timerwheel LABELS unit engine)
tao_test(engine/test_server TIMEOUT 60 LABELS integration engine threads)
tao_test(engine/test_conn TIMEOUT 120 LABELS integration engine threads)
tao_test(engine/test_timer TIMEOUT 120 LABELS integration engine threads)

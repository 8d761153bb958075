tao_test(engine/test_timerwheel LABELS unit engine)

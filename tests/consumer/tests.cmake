# The install test: `cmake --install` this build into a temporary prefix, then
# build and run tests/consumer against it with find_package(Tao) and with
# pkg-config, before and after moving the prefix. Sanitizer builds pass their
# -fsanitize flags on to the consumer, whose library needs their runtime.
add_test(NAME consumer/install
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/run.sh ${PROJECT_BINARY_DIR} ${CMAKE_C_COMPILER}
                 "${TAO_SANITIZE}")
set_tests_properties(consumer/install PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77 LABELS install)

/* Unit tests for engine/addr.c: "HOST:PORT" and "[V6]:PORT" into a
 * sockaddr (family, port, address bytes, length), the port's bounds, the
 * empty host and the bare port (all IPv4 addresses), and what is refused:
 * a missing port, names (the engine never resolves), garbage. */
#include "engine/addr.c"

#include "util/t_util.h"

static const struct sockaddr_in *parse4(const char *s, struct sockaddr_storage *ss)
{
    socklen_t len = 0;
    memset(ss, 0xAA, sizeof *ss); /* whatever was there must not show */
    assert_int_equal(tao__parse_addr(s, ss, &len), 0);
    assert_int_equal(len, sizeof(struct sockaddr_in));
    const struct sockaddr_in *in4 = (const struct sockaddr_in *)ss;
    assert_int_equal(in4->sin_family, AF_INET);
    for (size_t i = 0; i < sizeof in4->sin_zero; i++)
        assert_int_equal(in4->sin_zero[i], 0);
    return in4;
}

static const struct sockaddr_in6 *parse6(const char *s, struct sockaddr_storage *ss)
{
    socklen_t len = 0;
    memset(ss, 0xAA, sizeof *ss);
    assert_int_equal(tao__parse_addr(s, ss, &len), 0);
    assert_int_equal(len, sizeof(struct sockaddr_in6));
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
    assert_int_equal(in6->sin6_family, AF_INET6);
    assert_int_equal(in6->sin6_flowinfo, 0);
    assert_int_equal(in6->sin6_scope_id, 0);
    return in6;
}

static void rejected(const char *s)
{
    struct sockaddr_storage ss;
    socklen_t len = 12345;
    if (tao__parse_addr(s, &ss, &len) != -EINVAL)
        fail_msg("\"%s\" was accepted", s);
    assert_int_equal(len, 12345); /* untouched on failure */
}

static void test_ipv4(void **state)
{
    struct sockaddr_storage ss;
    const struct sockaddr_in *in4 = parse4("127.0.0.1:8080", &ss);
    const uint8_t want[4] = {127, 0, 0, 1};
    assert_int_equal(ntohs(in4->sin_port), 8080);
    assert_memory_equal(&in4->sin_addr, want, 4);

    in4 = parse4("10.20.30.40:1", &ss);
    const uint8_t want2[4] = {10, 20, 30, 40};
    assert_int_equal(ntohs(in4->sin_port), 1);
    assert_memory_equal(&in4->sin_addr, want2, 4);
}

static void test_ipv6(void **state)
{
    struct sockaddr_storage ss;
    const struct sockaddr_in6 *in6 = parse6("[::1]:443", &ss);
    const uint8_t loop[16] = {[15] = 1};
    assert_int_equal(ntohs(in6->sin6_port), 443);
    assert_memory_equal(&in6->sin6_addr, loop, 16);

    in6 = parse6("[2001:db8::a:b]:9000", &ss);
    const uint8_t doc[16] = {0x20, 0x01, 0x0d, 0xb8, [12] = 0, 0x0a, 0, 0x0b};
    assert_int_equal(ntohs(in6->sin6_port), 9000);
    assert_memory_equal(&in6->sin6_addr, doc, 16);

    in6 = parse6("[::]:7", &ss);
    assert_memory_equal(&in6->sin6_addr, &in6addr_any, 16);

    in6 = parse6("[::ffff:1.2.3.4]:80", &ss); /* v4-mapped stays IPv6 */
    const uint8_t mapped[16] = {[10] = 0xff, 0xff, 1, 2, 3, 4};
    assert_memory_equal(&in6->sin6_addr, mapped, 16);
}

static void test_port_bounds(void **state)
{
    struct sockaddr_storage ss;
    assert_int_equal(ntohs(parse4("1.2.3.4:0", &ss)->sin_port), 0);
    assert_int_equal(ntohs(parse4("1.2.3.4:65535", &ss)->sin_port), 65535);
    assert_int_equal(ntohs(parse6("[::1]:0", &ss)->sin6_port), 0);
    assert_int_equal(ntohs(parse6("[::1]:65535", &ss)->sin6_port), 65535);
    rejected("1.2.3.4:65536");
    rejected("[::1]:65536");
    rejected("1.2.3.4:-1");
    rejected("1.2.3.4:99999999999999999999999");
}

/* ":80" and "80" listen on every IPv4 address. */
static void test_empty_host_is_any(void **state)
{
    struct sockaddr_storage ss;
    const struct sockaddr_in *in4 = parse4(":80", &ss);
    assert_int_equal(ntohs(in4->sin_port), 80);
    assert_int_equal(in4->sin_addr.s_addr, htonl(INADDR_ANY));

    in4 = parse4("8080", &ss);
    assert_int_equal(ntohs(in4->sin_port), 8080);
    assert_int_equal(in4->sin_addr.s_addr, htonl(INADDR_ANY));
}

static void test_missing_port(void **state)
{
    rejected("");
    rejected(":");
    rejected("1.2.3.4:");
    rejected("1.2.3.4");
    rejected("[::1]");
    rejected("[::1]:");
}

static void test_names_rejected(void **state)
{
    rejected("localhost:80");
    rejected("example.com:443");
    rejected("[localhost]:80");
    rejected("ip6-localhost:80");
}

static void test_garbage(void **state)
{
    rejected("abc");
    rejected("1.2.3.4:80x");
    rejected("1.2.3.4:0x50");
    rejected("1.2.3.256:80");
    rejected("1.2.3:80");
    rejected("[::1]80");
    rejected("[::1]x80");
    rejected("[::1:80");
    rejected("[:::1]:80");
    rejected("[]");
    rejected("]:80");
}

/* A host longer than any numeric address is refused before it is copied. */
static void test_long_host(void **state)
{
    char s[200];
    memset(s, '1', sizeof s);
    strcpy(s + 150, ":80");
    rejected(s);
    s[0] = '[';
    strcpy(s + 100, "]:80");
    rejected(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ipv4),         cmocka_unit_test(test_ipv6),
        cmocka_unit_test(test_port_bounds),  cmocka_unit_test(test_empty_host_is_any),
        cmocka_unit_test(test_missing_port), cmocka_unit_test(test_names_rejected),
        cmocka_unit_test(test_garbage),      cmocka_unit_test(test_long_host),
    };
    return cmocka_run_group_tests_name("addr", tests, NULL, NULL);
}

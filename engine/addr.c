/* Parsing "HOST:PORT" listen and connect addresses (numeric only: name
 * resolution never happens inside the engine). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/addr.h"

static int parse_port(const char *s, uint16_t *port)
{
    char *end;
    if (*s == '\0')
        return -EINVAL;
    long v = strtol(s, &end, 10);
    if (*end != '\0' || v < 0 || v > 65535)
        return -EINVAL;
    *port = (uint16_t)v;
    return 0;
}

/* Accepts "1.2.3.4:80", "[::1]:80", ":80" (all IPv4 addresses) and "80". */
int tao__parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[64];
    const char *port;
    uint16_t p;

    memset(ss, 0, sizeof *ss);
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (!end || end[1] != ':' || (size_t)(end - s - 1) >= sizeof host)
            return -EINVAL;
        memcpy(host, s + 1, (size_t)(end - s - 1));
        host[end - s - 1] = '\0';
        port = end + 2;
    } else {
        const char *colon = strrchr(s, ':');
        size_t hl = colon ? (size_t)(colon - s) : 0;
        if (hl >= sizeof host)
            return -EINVAL;
        memcpy(host, s, hl);
        host[hl] = '\0';
        port = colon ? colon + 1 : s;
    }
    if (parse_port(port, &p) < 0)
        return -EINVAL;

    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (host[0] == '\0' || inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons(p);
        if (host[0] == '\0')
            in4->sin_addr.s_addr = htonl(INADDR_ANY);
        *len = sizeof *in4;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(p);
        *len = sizeof *in6;
        return 0;
    }
    return -EINVAL;
}

/* Internal: numeric address parsing (addr.c). Pure. */
#ifndef TAO_ENGINE_ADDR_H
#define TAO_ENGINE_ADDR_H

#include <sys/socket.h>

/* "HOST:PORT" or "[V6]:PORT", numeric only. 0, or -EINVAL. */
int tao__parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len);

#endif

/* tao-chat-client: type lines, read everyone's lines.
 *
 * Go Tao's chat client rebuilt. Two threads meet here: the main thread reads
 * stdin and sends each line with tao_client_send (by id, which is safe from
 * any thread), while the client's I/O loop prints what arrives. The loop
 * tells the main thread about connects and the final close through a pipe,
 * so one poll() waits for both. "bye" or end of input closes the connection
 * gracefully: the program waits for on_close, so every line typed is sent. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tao.h>

#include "examples/common.h"

static ex_opts_t opts = {
    .prog = "tao-chat-client",
    .what = "chat: send each line of stdin, print everyone's (\"bye\" quits)",
    .takes = EX_CONNECT | EX_RECONNECT | EX_TLS_CLIENT,
    .addr = "127.0.0.1:12345",
};
static int events[2]; /* the loop writes 'c' (connected) and 'x' (finished) */

static void notify(char ev)
{
    /* One byte into a pipe nobody fills: it cannot block or fail usefully. */
    if (write(events[1], &ev, 1) < 0)
        perror("tao-chat-client: pipe");
}

static void on_chat(tao_conn_t *conn, const tao_msg_t *msg)
{
    fwrite(msg->payload, 1, msg->len, stdout);
    if (msg->len == 0 || msg->payload[msg->len - 1] != '\n')
        putchar('\n');
    fflush(stdout);
}

static int on_connect(tao_conn_t *conn)
{
    fprintf(stderr, "%s: connected to %s (type lines; \"bye\" or end of input quits)\n", opts.prog,
            opts.addr);
    notify('c');
    return 0;
}

static void on_error(tao_client_t *cl, tao_conn_t *conn, int err, const char *what)
{
    fprintf(stderr, "%s: %s: %s: %s\n", opts.prog, opts.addr, what, tao_strerror(err));
}

static void on_close(tao_conn_t *conn)
{
    notify('x');
}

/* Wait for the next event from the loop. */
static char next_event(void)
{
    char ev = 'x';
    while (read(events[0], &ev, 1) < 0 && errno == EINTR)
        ;
    return ev;
}

/* Send one line; false when the user asked to quit. */
static bool send_line(tao_client_t *cl, int64_t id, const char *line, size_t len)
{
    if (strcmp(line, "bye\n") == 0 || strcmp(line, "bye") == 0)
        return false;
    int rc = tao_client_send(cl, id, EX_MSG, line, len);
    if (rc == -ENOTCONN)
        fprintf(stderr, "%s: not connected (reconnecting): line not sent\n", opts.prog);
    else if (rc < 0)
        fprintf(stderr, "%s: send: %s\n", opts.prog, tao_strerror(rc));
    return true;
}

/* Read and send lines until the user quits (returns true) or the
 * connection is finished (false). */
static bool chat(tao_client_t *cl, int64_t id)
{
    struct pollfd fds[2] = {{.fd = STDIN_FILENO, .events = POLLIN},
                            {.fd = events[0], .events = POLLIN}};
    char *line = NULL;
    size_t cap = 0;
    bool quit = false;

    while (!quit) {
        if (poll(fds, 2, -1) < 0)
            continue; /* EINTR */
        if (fds[1].revents && next_event() == 'x')
            break;
        if (!fds[0].revents)
            continue;
        ssize_t len = getline(&line, &cap, stdin);
        quit = len < 0 || !send_line(cl, id, line, (size_t)len);
    }
    free(line);
    return quit;
}

int main(int argc, char **argv)
{
    if (ex_parse(argc, argv, &opts) < 0 || pipe(events) < 0)
        return 2;
    /* Unbuffered, so a line that stdio read ahead cannot hide from poll(). */
    setvbuf(stdin, NULL, _IONBF, 0);

    tao_client_config_t cfg = {
        .reconnect = opts.reconnect,
        .on_connect = on_connect,
        .on_close = on_close,
        .on_error = on_error,
    };
    tao_client_t *cl;
    int64_t id = ex_dial(&opts, &cfg, on_chat, &cl);
    if (id < 0)
        return 1;
    /* Read nothing before the first connect, or the first lines would be
     * refused with -ENOTCONN. */
    int status = 1;
    if (next_event() == 'c' && chat(cl, id)) {
        tao_client_close(cl, id); /* graceful: lines still queued go out */
        while (next_event() != 'x')
            ;
        status = 0;
    } else {
        fprintf(stderr, "%s: disconnected from %s\n", opts.prog, opts.addr);
    }
    tao_client_destroy(cl);
    return status;
}

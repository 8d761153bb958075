/* An installed-package consumer: built only against the installed headers and
 * library (CMake package or tao.pc), it proves that a user outside this tree
 * can include <tao.h>, link libtao and round-trip the Go Tao TLV golden
 * vector. Exit 0 on success, 1 with a message on the first mismatch. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <tao.h>

static int fail(const char *what)
{
    fprintf(stderr, "consumer: %s\n", what);
    return 1;
}

int main(void)
{
    static const char payload[] = "hello, world";
    static const uint8_t golden[] = {0x01, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x00, 'h', 'e',
                                     'l',  'l',  'o',  ',',  ' ',  'w',  'o',  'r',  'l', 'd'};
    const size_t plen = sizeof payload - 1;
    uint8_t wire[sizeof golden];
    tao_frame_hdr_t hdr;
    tao_frame_t frame;
    tao_codec_t codec;
    const char *msg;
    ssize_t n;

    if (strcmp(tao_version(), "0.1.0") != 0)
        return fail("tao_version() is not 0.1.0");
    msg = tao_strerror(-EMSGSIZE);
    if (msg == NULL || msg[0] == '\0')
        return fail("tao_strerror(-EMSGSIZE) is empty");

    tao_codec_tlv(&codec, 0);
    if (codec.encode(&codec, 1, plen, &hdr) != 0)
        return fail("encode failed");
    if (hdr.pre_len + plen + hdr.post_len != sizeof wire)
        return fail("encoded frame has the wrong length");
    memcpy(wire, hdr.pre, hdr.pre_len);
    memcpy(wire + hdr.pre_len, payload, plen);
    memcpy(wire + hdr.pre_len + plen, hdr.post, hdr.post_len);
    if (memcmp(wire, golden, sizeof golden) != 0)
        return fail("encoded bytes differ from the golden vector");

    n = codec.decode(&codec, golden, sizeof golden, &frame);
    if (n != (ssize_t)sizeof golden)
        return fail("decode did not consume the whole frame");
    if (frame.type != 1 || frame.len != plen || memcmp(frame.payload, payload, plen) != 0)
        return fail("decoded frame differs from the golden vector");
    if (codec.decode(&codec, golden, sizeof golden - 1, &frame) != 0)
        return fail("decode of a partial frame did not ask for more");

    printf("consumer: libtao %s ok (%s)\n", tao_version(), msg);
    return 0;
}

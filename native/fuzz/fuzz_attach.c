/* fuzz_attach.c — libFuzzer harness: attach to a file whose header and tables
 * are arbitrary. The input is the whole file (first byte even) or patches to
 * a valid image of an idle domain (first byte odd): {offset:4, length:1,
 * bytes}, offsets mostly in the header and tables. exipc_open must fail with
 * a documented error, or give a domain on which the API works or fails with
 * documented errors. */
#include "fuzz_common.h"

static uint8_t *img;
static size_t img_len;

static void make_image(void)
{
    const char *name = fz_name();
    char keep[64], path[128];
    snprintf(keep, sizeof keep, "%s", name);
    snprintf(path, sizeof path, "/dev/shm/exipc.%s", keep);
    exipc_domain_t *d;
    if (exipc_open(keep, &fz_opts, &d) != 0)
        fz_fail("cannot open a fresh domain");
    exipc_close(d);
    int fd = open(path, O_RDONLY);
    struct exipc__layout L;
    exipc__layout_of(&fz_opts, &L);
    img_len = L.total_size;
    img = malloc(img_len);
    if (fd < 0 || img == NULL || pread(fd, img, img_len, 0) != (ssize_t)img_len)
        fz_fail("cannot read the image");
    close(fd);
    exipc_unlink(keep);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (img == NULL)
        make_image();
    uint8_t *file;
    size_t len;
    if (size == 0 || (data[0] & 1) == 0) {
        len = size ? size - 1 : 0;
        file = malloc(len + 1);
        if (len)
            memcpy(file, data + 1, len);
    } else {
        struct exipc__layout L;
        exipc__layout_of(&fz_opts, &L);
        len = img_len;
        file = malloc(len);
        memcpy(file, img, len);
        struct fz_in in = {data + 1, size - 1, 0};
        while (fz_more(&in)) {
            uint64_t off = fz_u32(&in);
            off = (off & 0x80000000u) ? off % len : off % L.off_slabs;
            int n = fz_u8(&in) % 32;
            for (int i = 0; i < n && off + (uint64_t)i < len; i++)
                file[off + (uint64_t)i] = fz_u8(&in);
        }
    }
    const char *name = fz_name();
    char keep[64], path[128];
    snprintf(keep, sizeof keep, "%s", name);
    snprintf(path, sizeof path, "/dev/shm/exipc.%s", keep);
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || (len && write(fd, file, len) != (ssize_t)len))
        fz_fail("cannot write %s", path);
    close(fd);
    free(file);
    exipc_domain_t *d = NULL;
    int rc = exipc_open(keep, NULL, &d);
    unlink(path);
    if (fz_check("open", rc, EPROTO, ENOTSUP, EMFILE, ETIMEDOUT, 0) != 0)
        return 0;
    struct exipc_stat st;
    fz_check("stat", exipc_stat(d, &st), 0);
    fz_check("reap", exipc_reap(d), ETIMEDOUT, EPROTO, 0);
    exipc_listener_t *l = NULL;
    exipc_chan_t *c = NULL, *s = NULL;
    fz_check("listen", exipc_listen(d, "svc", &l), EEXIST, EMFILE, ETIMEDOUT, EPROTO, 0);
    fz_check("connect", exipc_connect(d, "svc", 0, &c), ENOENT, EMFILE, ETIMEDOUT, EPROTO, 0);
    if (l)
        fz_check("accept", exipc_accept(l, 0, &s), EAGAIN, ETIMEDOUT, EPROTO, 0);
    exipc_handle_t h;
    if (fz_check("alloc", exipc_alloc(d, 100, &h), ENOMEM, EPROTO, 0) == 0) {
        size_t n = 0;
        void *p = exipc_ptr(d, h, &n);
        if (p)
            fz_in_arena(d, p, n);
        if (c == NULL || fz_check("send", exipc_send(c, h), EAGAIN, EPIPE, EBADMSG, EPROTO, 0) != 0)
            fz_check("free", exipc_free(d, h), EBADMSG, 0);
    }
    if (s && fz_check("recv", exipc_recv(s, &h, 0), EAGAIN, EPIPE, EBADMSG, EPROTO, 0) == 0)
        fz_check("free", exipc_free(d, h), EBADMSG, 0);
    exipc_close(d);
    return 0;
}

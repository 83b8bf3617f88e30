/* driver.c — runs a libFuzzer harness without libFuzzer: over every file in
 * the directories or files given (its corpus: seeds and the inputs of past
 * findings, kept as regression tests), then over N pseudo-random inputs
 * from a fixed seed. Built with gcc and ASan+UBSan, it runs in `make test`;
 * `make fuzz` builds the same harness with clang -fsanitize=fuzzer.
 *
 *   fuzz_X_replay [-n N] [-s SEED] [CORPUS_DIR_OR_FILE...]
 *
 * Without paths it replays $EXIPC_FUZZ_CORPUS/X if that is set; N defaults
 * to $EXIPC_FUZZ_RUNS, else 2000.
 *
 * Prints `fuzz_X: N passed, 0 failed` (inputs); a violation aborts. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static long runs;

static void run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return;
    static uint8_t buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    uint8_t *copy = malloc(n ? n : 1); /* exact size: ASan sees an overread */
    memcpy(copy, buf, n);
    LLVMFuzzerTestOneInput(copy, n);
    free(copy);
    runs++;
}

static void run_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return;
    if (!S_ISDIR(st.st_mode)) {
        run_file(path);
        return;
    }
    DIR *dir = opendir(path);
    struct dirent *e;
    while (dir && (e = readdir(dir)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        run_file(p);
    }
    if (dir)
        closedir(dir);
}

int main(int argc, char **argv)
{
    long n = getenv("EXIPC_FUZZ_RUNS") ? atol(getenv("EXIPC_FUZZ_RUNS")) : 2000;
    unsigned long long seed = 1;
    int opt;
    while ((opt = getopt(argc, argv, "n:s:")) != -1) {
        if (opt == 'n')
            n = atol(optarg);
        else if (opt == 's')
            seed = strtoull(optarg, NULL, 0);
    }
    const char *me = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    for (int i = optind; i < argc; i++)
        run_path(argv[i]);
    if (optind == argc && getenv("EXIPC_FUZZ_CORPUS")) {
        /* fuzz_NAME_replay -> $EXIPC_FUZZ_CORPUS/NAME */
        char name[256], dir[4096];
        snprintf(name, sizeof name, "%s", strncmp(me, "fuzz_", 5) == 0 ? me + 5 : me);
        char *suffix = strstr(name, "_replay");
        if (suffix)
            *suffix = 0;
        snprintf(dir, sizeof dir, "%s/%s", getenv("EXIPC_FUZZ_CORPUS"), name);
        run_path(dir);
    }
    uint64_t x = seed * 0x9E3779B97F4A7C15ull | 1;
    for (long k = 0; k < n; k++) {
        size_t len = 0;
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        len = x % 300;
        uint8_t *b = malloc(len ? len : 1);
        for (size_t i = 0; i < len; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            b[i] = (uint8_t)(x >> 29);
        }
        LLVMFuzzerTestOneInput(b, len);
        free(b);
        runs++;
    }
    printf("%s: %ld passed, 0 failed\n", me, runs);
    return 0;
}

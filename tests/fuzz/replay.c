/*
 * replay.c: the driver that turns a libFuzzer target into a test program.
 *
 * `make test` links every tests/fuzz/fuzz_X.c with this file. Its main()
 * runs the target's LLVMFuzzerTestOneInput() on every file in
 * tests/fuzz/corpus/X/ (X comes from the program's name, fuzz_X; the path
 * is relative to the repository root, where tests run). The corpus holds
 * the seeds and every crasher a fuzzing run (`make fuzz`) ever found, so
 * this is the regression test for each of them.
 *
 * Each input runs in a forked child: a crash, a sanitizer report, a leak or
 * an abort() from one of the target's own checks then fails that input's
 * test (named "X/<file>") and the rest still run. A child that takes longer
 * than a minute fails as a hang. One more test, "X/corpus", fails when the
 * corpus folder is missing or empty, so a misplaced corpus cannot pass.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HANG_S 60

static char target[64];
static char corpus_dir[256];
static char input_path[512];
static int n_inputs;

/* Runs the target on input_path in a child and reports how the child ended. */
static void run_input(void)
{
    pid_t pid;
    int status = 0;

    fflush(stdout);
    fflush(stderr);
    pid = fork();
    CHECKF(pid >= 0, "fork failed");
    if (pid < 0) return;
    if (pid == 0) {
        size_t len = 0;
        uint8_t *data = t_read_file(input_path, &len);
        if (!data) {
            fprintf(stderr, "%s: cannot read\n", input_path);
            _exit(2);
        }
        alarm(HANG_S);
        LLVMFuzzerTestOneInput(data, len);
        free(data);
        /* exit(), not _exit(), so that LeakSanitizer checks the child. */
        exit(0);
    }
    while (waitpid(pid, &status, 0) < 0) {
        if (errno == EINTR) continue;
        CHECKF(0, "waitpid failed: %s", strerror(errno));
        return;
    }
    if (WIFSIGNALED(status))
        CHECKF(0, "%s: killed by signal %d (%s)%s", input_path, WTERMSIG(status),
               strsignal(WTERMSIG(status)), WTERMSIG(status) == SIGALRM ? ": a hang" : "");
    else
        CHECKF(WEXITSTATUS(status) == 0, "%s: exited with status %d", input_path, WEXITSTATUS(status));
}

static void check_corpus(void)
{
    CHECKF(n_inputs > 0, "%s: missing or holds no input files", corpus_dir);
}

static int is_input(const struct dirent *e)
{
    struct stat st;
    char path[512];
    if (e->d_name[0] == '.') return 0;
    snprintf(path, sizeof path, "%s/%s", corpus_dir, e->d_name);
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int main(int argc, char **argv)
{
    const char *base = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    struct dirent **names = NULL;
    char test_name[512];
    int i, n;

    t_init(argc, argv);
    if (strncmp(base, "fuzz_", 5) != 0 || !base[5]) {
        fprintf(stderr, "%s: the program must be named fuzz_<target>\n", argv[0]);
        return 2;
    }
    snprintf(target, sizeof target, "%s", base + 5);
    snprintf(corpus_dir, sizeof corpus_dir, "tests/fuzz/corpus/%s", target);

    n = scandir(corpus_dir, &names, is_input, alphasort);
    n_inputs = n > 0 ? n : 0;
    snprintf(test_name, sizeof test_name, "%s/corpus", target);
    t_run(test_name, check_corpus);
    for (i = 0; i < n; i++) {
        snprintf(input_path, sizeof input_path, "%s/%s", corpus_dir, names[i]->d_name);
        snprintf(test_name, sizeof test_name, "%s/%s", target, names[i]->d_name);
        t_run(test_name, run_input);
        free(names[i]);
    }
    free(names);
    return t_summary();
}

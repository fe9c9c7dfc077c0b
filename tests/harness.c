#include "harness.h"

#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int run_one(const test_case_t *c)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        alarm(c->timeout_s ? (unsigned)c->timeout_s : 30);
        c->fn();
        fflush(NULL);
        _exit(0);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        ;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 77)
        return 77;
    if (WIFSIGNALED(status))
        fprintf(stderr, "# %s: killed by signal %d (%s)%s\n", c->name, WTERMSIG(status),
                strsignal(WTERMSIG(status)), WTERMSIG(status) == SIGALRM ? ", timed out" : "");
    else
        fprintf(stderr, "# %s: exit status %d\n", c->name, WEXITSTATUS(status));
    return 1;
}

int test_run_cases(int argc, char **argv, const test_case_t *cases, size_t n)
{
    if (argc > 1) {
        for (size_t i = 0; i < n; i++)
            if (strcmp(cases[i].name, argv[1]) == 0) {
                cases[i].fn();
                return 0;
            }
        fprintf(stderr, "no case named %s\n", argv[1]);
        return 2;
    }
    printf("1..%zu\n", n);
    int failed = 0;
    for (size_t i = 0; i < n; i++) {
        int rc = run_one(&cases[i]);
        if (rc == 77)
            printf("ok %zu - %s # SKIP\n", i + 1, cases[i].name);
        else if (rc == 0)
            printf("ok %zu - %s\n", i + 1, cases[i].name);
        else {
            printf("not ok %zu - %s\n", i + 1, cases[i].name);
            failed++;
        }
    }
    fflush(stdout);
    return failed ? 1 : 0;
}

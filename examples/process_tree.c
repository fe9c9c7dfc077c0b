/* process_tree: a tree of processes, each printing its pid and its parent.
 *
 * Every process above the given depth starts two children, so depth D
 * gives 2^(D+1) - 1 processes. Each line is one write() under PIPE_BUF
 * bytes, so lines from different processes never interleave.
 *
 * Python original (examples/python/process_tree.py): os.fork() recursion.
 * Plain POSIX here: the runtime has no one-off process API.
 *
 *   process_tree [--depth D] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_DEPTH 6 /* 127 processes: enough to see the shape */

static void report(int depth)
{
    char line[96];
    int len = snprintf(line, sizeof line, "depth %d: pid %d, parent %d\n", depth,
                       (int)getpid(), (int)getppid());
    ssize_t r = write(STDOUT_FILENO, line, (size_t)len);
    (void)r;
}

/* Reports, starts two subtrees, and waits for them: a process's parent
 * is still alive when it reports, so getppid() names the real parent. */
static int node(int depth, int max)
{
    report(depth);
    if (depth == max)
        return 0;
    pid_t kids[2];
    for (int i = 0; i < 2; i++) {
        kids[i] = fork();
        if (kids[i] == 0)
            _exit(node(depth + 1, max));
        if (kids[i] < 0)
            return 1;
    }
    int failed = 0;
    for (int i = 0; i < 2; i++) {
        int status;
        waitpid(kids[i], &status, 0);
        failed |= !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    }
    return failed;
}

int main(int argc, char **argv)
{
    int depth = 2;
    if (argc == 3 && strcmp(argv[1], "--depth") == 0)
        depth = atoi(argv[2]);
    if (depth < 0 || depth > MAX_DEPTH) {
        fprintf(stderr, "usage: process_tree [--depth 0..%d]\n", MAX_DEPTH);
        return 2;
    }
    int rc = node(0, depth);
    printf("processes: %d\n", (1 << (depth + 1)) - 1);
    printf("Each fork() doubles a branch; every process waits for its children,\n"
           "so none is orphaned and re-parented to init before it reports.\n");
    return rc;
}

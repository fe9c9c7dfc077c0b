/* queue_report: four worker processes report their results through a
 * queue, and the parent prints them in the order they arrive.
 *
 * Python original (examples/python/queue_report.py): multiprocessing.Queue
 * shared by four Processes. corio's queues belong to one loop and do not
 * cross processes, so the queue here is a pipe: every report is one
 * write() of fewer than PIPE_BUF bytes, which POSIX makes atomic, so
 * reports from several writers never interleave.
 *
 *   queue_report [--n N]   (each worker sums the squares of its quarter
 *                           of 0..N-1) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define WORKERS 4

typedef struct report {
    int worker;
    int pid;
    uint64_t sum;
} report_t;

static uint64_t sum_squares(uint64_t from, uint64_t to)
{
    uint64_t s = 0;
    for (uint64_t k = from; k < to; k++)
        s += k * k;
    return s;
}

static void worker(int id, uint64_t n, int fd)
{
    uint64_t per = (n + WORKERS - 1) / WORKERS;
    uint64_t from = per * (uint64_t)id, to = from + per < n ? from + per : n;
    report_t r = {id, (int)getpid(), from < to ? sum_squares(from, to) : 0};
    _exit(write(fd, &r, sizeof r) == (ssize_t)sizeof r ? 0 : 1);
}

int main(int argc, char **argv)
{
    uint64_t n = 1000000;
    if (argc == 3 && strcmp(argv[1], "--n") == 0)
        n = strtoull(argv[2], NULL, 10);
    int q[2];
    if (pipe(q) < 0) {
        perror("pipe");
        return 1;
    }
    pid_t pids[WORKERS];
    for (int i = 0; i < WORKERS; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            close(q[0]);
            worker(i, n, q[1]);
        }
    }
    close(q[1]); /* now the pipe ends when the last worker exits */
    uint64_t total = 0;
    report_t r;
    int got = 0;
    while (read(q[0], &r, sizeof r) == (ssize_t)sizeof r) {
        printf("report from worker %d (pid %d): %llu\n", r.worker, r.pid,
               (unsigned long long)r.sum);
        total += r.sum;
        got++;
    }
    for (int i = 0; i < WORKERS; i++)
        waitpid(pids[i], NULL, 0);
    printf("reports: %d\ntotal %llu\n", got, (unsigned long long)total);
    printf("The reports arrive in the order the workers finish, not the order they\n"
           "started: the queue is first-come first-served.\n");
    return got == WORKERS ? 0 : 1;
}

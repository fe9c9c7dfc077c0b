/* hello_child: the first multiprocessing program, a hello from a child.
 *
 * Python original (examples/python/hello_child.py):
 *     p = Process(target=f, args=(name,)); p.start(); p.join()
 * corio's executors run tasks in pools, not one-off processes, so this is
 * plain POSIX: fork() is Process.start(), waitpid() is join().
 *
 *   hello_child [--name NAME] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void greet(const char *name)
{
    printf("hello %s from the child: pid %d, parent %d\n", name, (int)getpid(), (int)getppid());
}

int main(int argc, char **argv)
{
    const char *name = "bob";
    if (argc == 3 && strcmp(argv[1], "--name") == 0)
        name = argv[2];
    printf("parent: pid %d\n", (int)getpid());
    /* Flush first, or the child inherits the unwritten buffer and prints
     * the parent's line a second time. */
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        greet(name);
        exit(0); /* flushes the child's own stdout */
    }
    int status;
    waitpid(pid, &status, 0);
    printf("parent: child %d exited with status %d\n", (int)pid,
           WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    printf("The child is a copy of the parent at the moment of fork(): same code,\n"
           "same memory contents, its own pid. Its parent is this process.\n");
    return 0;
}

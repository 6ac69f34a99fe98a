/*
 * The exec agent on a unix socket of the host, for tests without a VM (launcher/cli's ExecAgentTest):
 *   exec_unix PATH    listens on PATH and serves sessions as the guest's agent does, until killed.
 */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../exec.h"

int main(int argc, char **argv)
{
    if (argc != 2 || strlen(argv[1]) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        fprintf(stderr, "usage: exec_unix PATH (shorter than 108 bytes)\n");
        return 2;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strcpy(a.sun_path, argv[1]);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 16)) {
        perror(argv[1]);
        return 1;
    }
    exec_agent_serve(fd);
    return 0;
}

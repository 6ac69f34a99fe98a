#ifndef KRUN_INIT_EXEC_H
#define KRUN_INIT_EXEC_H

#include <sys/types.h>

/*
 * Starts the exec agent (exec.c): a child of init that listens on guest vsock port `port` and runs one
 * process per host connection. Returns its pid, or -1 (said on the kernel log) when it cannot start.
 */
pid_t start_exec_agent(unsigned port);

/* The agent's loop on a listening stream socket (vsock in the guest; a unix socket in tests): never returns. */
void exec_agent_serve(int listener);

#endif

// Starts the test process's stall watchdog (ParleyTestSupport's StallWatchdog) before any
// test runs, when PARLEY_STALL_DUMP is set. Swift has no load-time hook; a constructor here
// calls the Swift side, which only starts a thread.
#include <stdlib.h>
#include <stdio.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include "CParleyTestWatchdog.h"

extern void parley_test_watchdog_start(void);

__attribute__((constructor)) static void parley_test_watchdog_init(void) {
    if (getenv("PARLEY_STALL_DUMP") != NULL) parley_test_watchdog_start();
}

int parley_test_watchdog_linked(void) { return 1; }

// Gives the test process an EPMD port of its own, unless ERL_EPMD_PORT is set already: the
// test's nodes (in-process ones, ParleyTestNode, erl, elixir) read it or inherit it, as
// Erlang's do, so none registers with or starts an EPMD on 4369 beside other Erlang nodes on
// the machine. A free port below the kernel's ephemeral range (32768 and up on Linux), so no
// outgoing connection takes it before the first node's embedded EPMD binds it.
__attribute__((constructor)) static void parley_test_epmd_port_init(void) {
    if (getenv("ERL_EPMD_PORT") != NULL) return;
    for (int i = 0; i < 64; i++) {
        unsigned port = 20000 + ((unsigned)getpid() * 7u + (unsigned)i * 131u) % 12000u;
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) return;
        struct sockaddr_in a = {0};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_ANY);
        a.sin_port = htons((unsigned short)port);
        int ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
        close(fd);
        if (ok) {
            char text[8];
            snprintf(text, sizeof text, "%u", port);
            setenv("ERL_EPMD_PORT", text, 1);
            return;
        }
    }
}

// Starts the test process's stall watchdog (ParleyTestSupport's StallWatchdog) before any
// test runs, when PARLEY_STALL_DUMP is set. Swift has no load-time hook; a constructor here
// calls the Swift side, which only starts a thread.
#include <stdlib.h>
#include "CParleyTestWatchdog.h"

extern void parley_test_watchdog_start(void);

__attribute__((constructor)) static void parley_test_watchdog_init(void) {
    if (getenv("PARLEY_STALL_DUMP") != NULL) parley_test_watchdog_start();
}

int parley_test_watchdog_linked(void) { return 1; }

#define _GNU_SOURCE
#include "CParleyShims.h"
#include <pthread.h>
#if defined(__linux__)
#include <malloc.h>
#include <sched.h>
#endif

__thread long parley_reductions_left __attribute__((tls_model("initial-exec"))) = 1L << 40;
__thread long parley_reductions_budget __attribute__((tls_model("initial-exec"))) = 0;

int parley_trace_sessions = 0;
__thread void *parley_running_callback __attribute__((tls_model("initial-exec"))) = 0;
__thread void *parley_current_worker __attribute__((tls_model("initial-exec"))) = 0;

void parley_trace_sessions_add(int delta) {
    __atomic_add_fetch(&parley_trace_sessions, delta, __ATOMIC_RELAXED);
}

void parley_set_thread_name(const char *name) {
#if defined(__linux__)
    pthread_setname_np(pthread_self(), name);
#elif defined(__APPLE__)
    pthread_setname_np(name);
#endif
}

size_t parley_malloc_usable_size(void *p) {
#if defined(__linux__)
    return malloc_usable_size(p);
#else
    (void)p;
    return 0;
#endif
}

void parley_malloc_trim(void) {
#if defined(__linux__)
    malloc_trim(0);
#endif
}

size_t parley_heap_in_use(void) {
#if defined(__linux__) && defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
    struct mallinfo2 m = mallinfo2();
    return m.uordblks + m.hblkhd;
#else
    return 0;
#endif
}

int parley_set_idle_priority(void) {
#if defined(__linux__)
    struct sched_param param = { .sched_priority = 0 };
    return sched_setscheduler(0, SCHED_IDLE, &param);
#else
    return -1;
#endif
}

#ifndef CPARLEY_SHIMS_H
#define CPARLEY_SHIMS_H
#include <stddef.h>

/// A CPU hint for spin-wait loops (PAUSE on x86, YIELD on ARM).
static inline void parley_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/// Reductions left for the job running on this thread, and the budget a scheduler thread
/// resets it to for each job (0 on other threads). Thread-local and initial-exec, so that a
/// channel operation counts a reduction with a decrement and no call.
extern __thread long parley_reductions_left __attribute__((tls_model("initial-exec")));
extern __thread long parley_reductions_budget __attribute__((tls_model("initial-exec")));

/// Counts one reduction; returns 1 when the job's budget is spent (and starts a new one).
/// Threads that are not scheduler threads never report a spent budget.
static inline int parley_spend_reduction(void) {
    if (--parley_reductions_left > 0) return 0;
    if (parley_reductions_budget > 0) {
        parley_reductions_left = parley_reductions_budget;
        return 1;
    }
    parley_reductions_left = 1L << 40;
    return 0;
}

/// The reduction budget of the job running on this thread: the scheduler's configured
/// reductions on a scheduler thread (or an I/O thread running woken processes), 0 elsewhere.
static inline long parley_reduction_budget(void) {
    return parley_reductions_budget;
}

/// Starts a job's budget on a scheduler thread.
static inline void parley_reset_reductions(long budget) {
    parley_reductions_budget = budget;
    parley_reductions_left = budget;
}

/// How many trace sessions are active in the OS process (`Process.trace`). The runtime's
/// sends, deliveries, links and exits read it with one relaxed load, and do nothing more for
/// tracing while it is 0.
extern int parley_trace_sessions;

static inline int parley_tracing(void) {
    return __atomic_load_n(&parley_trace_sessions, __ATOMIC_RELAXED);
}

/// Adds `delta` to the session count (relaxed: a session attaches under its process's lock,
/// which orders what the traced paths then read).
void parley_trace_sessions_add(int delta);

/// The callback process whose handler runs on this thread now (an unretained pointer), or
/// NULL: set for the span of each run of handlers, read only while tracing.
extern __thread void *parley_running_callback __attribute__((tls_model("initial-exec")));

static inline void *parley_get_running_callback(void) { return parley_running_callback; }

/// Sets it; returns the one it replaces (to restore when the run ends).
static inline void *parley_swap_running_callback(void *p) {
    void *outer = parley_running_callback;
    parley_running_callback = p;
    return outer;
}

/// The scheduler worker this thread runs (an unretained pointer: a scheduler thread's
/// worker lives as long as the thread; a guest worker is set only for the span of a run),
/// or NULL. A compiler thread-local, read on every wake-up: `pthread_getspecific` behind a
/// lazily made key cost a call and a once-check each time.
extern __thread void *parley_current_worker __attribute__((tls_model("initial-exec")));

static inline void *parley_get_current_worker(void) { return parley_current_worker; }
static inline void parley_set_current_worker(void *w) { parley_current_worker = w; }

/// Names the calling thread (shown by perf, top -H and gdb).
void parley_set_thread_name(const char *name);

/// Moves the calling thread to the idle scheduling class (Linux SCHED_IDLE): it runs only on
/// a CPU nothing else wants, and any thread that wakes there preempts it at once.
/// Returns 0 on success; -1 where there is no such class.
int parley_set_idle_priority(void);

/// Bytes usable in the heap block at `p` (glibc's malloc_usable_size), 0 if unknown.
size_t parley_malloc_usable_size(void *p);

/// Returns freed heap memory to the system (glibc's malloc_trim); no-op elsewhere.
void parley_malloc_trim(void);

/// Bytes the C allocator has handed out and not had back (glibc's mallinfo2: in-use blocks
/// plus mmapped ones); 0 where unknown. Unlike resident memory, free memory the allocator
/// keeps for reuse does not count.
size_t parley_heap_in_use(void);

#endif

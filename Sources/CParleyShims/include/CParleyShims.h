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

/// Names the calling thread (shown by perf, top -H and gdb).
void parley_set_thread_name(const char *name);

/// Bytes usable in the heap block at `p` (glibc's malloc_usable_size), 0 if unknown.
size_t parley_malloc_usable_size(void *p);

/// Returns freed heap memory to the system (glibc's malloc_trim); no-op elsewhere.
void parley_malloc_trim(void);

#endif

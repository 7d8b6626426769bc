// Counts every allocation of the OS process by defining the C allocator's entry points in the
// executable: the dynamic linker binds every library's malloc (the Swift runtime's included)
// to these, and they forward to glibc's own implementation (__libc_malloc and friends, which
// glibc exports for exactly this use). Relaxed atomics: the counts are read after the
// measured work has been joined, so only their sum matters, not their order.
#define _GNU_SOURCE
#include "CMallocCounter.h"
#include <errno.h>
#include <unistd.h>
#include <execinfo.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static uint64_t count_;
static uint64_t bytes_;

static int trace_every_ = -1;  // -1: not read yet; 0: off (PARLEY_MALLOC_TRACE unset)
static __thread int in_trace_;

// PARLEY_MALLOC_TRACE=N prints the stack of every Nth allocation to stderr (the tool for
// finding what a count is made of; resolve with `swift demangle`).
static void trace(uint64_t k, size_t n) {
    if (in_trace_) return;
    in_trace_ = 1;
    if (trace_every_ < 0) {
        const char *e = getenv("PARLEY_MALLOC_TRACE");
        trace_every_ = e ? atoi(e) : 0;
    }
    if (trace_every_ > 0 && k % (uint64_t)trace_every_ == 0) {
        char line[48];
        int len = snprintf(line, sizeof line, "size %zu\n", n);
        (void)!write(2, line, (size_t)len);
        void *frames[24];
        int n = backtrace(frames, 24);
        backtrace_symbols_fd(frames, n, 2);
        (void)!write(2, "--\n", 3);
    }
    in_trace_ = 0;
}

static inline void note(size_t n) {
    uint64_t k = __atomic_fetch_add(&count_, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&bytes_, n, __ATOMIC_RELAXED);
    if (__builtin_expect(trace_every_ != 0, 0)) trace(k, n);
}

uint64_t parley_malloc_count(void) { return __atomic_load_n(&count_, __ATOMIC_RELAXED); }
uint64_t parley_malloc_bytes(void) { return __atomic_load_n(&bytes_, __ATOMIC_RELAXED); }

void *malloc(size_t n) { note(n); return __libc_malloc(n); }
void *calloc(size_t k, size_t n) { note(k * n); return __libc_calloc(k, n); }
void *realloc(void *p, size_t n) {
    if (p == NULL) note(n);
    return __libc_realloc(p, n);
}
void free(void *p) { __libc_free(p); }
void *memalign(size_t a, size_t n) { note(n); return __libc_memalign(a, n); }
void *aligned_alloc(size_t a, size_t n) { note(n); return __libc_memalign(a, n); }
int posix_memalign(void **out, size_t a, size_t n) {
    if (a < sizeof(void *) || (a & (a - 1)) != 0) return EINVAL;
    void *p = __libc_memalign(a, n);
    if (p == NULL) return ENOMEM;
    note(n);
    *out = p;
    return 0;
}

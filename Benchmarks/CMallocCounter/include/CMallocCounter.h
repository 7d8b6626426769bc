#ifndef CMALLOC_COUNTER_H
#define CMALLOC_COUNTER_H
#include <stdint.h>

/// Allocations (malloc, calloc, realloc of a new block, aligned allocations) made by every
/// thread of this OS process since it started. Linking this target interposes the C
/// allocator for the whole executable, so link it into the allocation gate only.
uint64_t parley_malloc_count(void);

/// Bytes requested by those allocations.
uint64_t parley_malloc_bytes(void);

#endif

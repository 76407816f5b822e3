// The BLAS shim: oneDNN's C API (Debian libdnnl-dev). Only Tensors/BLAS.swift,
// Tensors/MatmulPrimitive.swift and Tensors/Parallel.swift call into it.
#include <oneapi/dnnl/dnnl.h>

// glibc's mallinfo2 (not in Swift's Glibc module): what oneDNN's primitives take from the C heap.
#include <malloc.h>

// libgomp, the OpenMP runtime Debian's oneDNN runs its threads on. Tensors' parallel loops use
// the same thread pool (through the entry point GCC emits for `#pragma omp parallel`), so matmuls
// and elementwise kernels never compete: with a second pool, OpenMP's spinning workers and
// Dispatch's threads oversubscribed the cores.
void GOMP_parallel(void (*fn)(void *), void *data, unsigned num_threads, unsigned flags);
int omp_get_thread_num(void);
int omp_get_num_threads(void);
int omp_get_max_threads(void);

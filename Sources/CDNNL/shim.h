// The BLAS shim: oneDNN's C API (Debian libdnnl-dev). Only Tensors/BLAS.swift calls into it.
#include <oneapi/dnnl/dnnl.h>

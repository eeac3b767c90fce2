#ifndef UNIVERSEG_COPENBLAS_SHIM_H
#define UNIVERSEG_COPENBLAS_SHIM_H
// Debian's libopenblas-dev: pkg-config "openblas" adds the include directory of the
// selected variant (openblas-pthread), whose cblas.h declares the OpenBLAS extensions
// (openblas_set_num_threads, openblas_get_config, ...).
#include <cblas.h>
#endif

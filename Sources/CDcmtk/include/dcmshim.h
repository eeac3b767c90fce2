#ifndef UNIVERSEG_DCMSHIM_H
#define UNIVERSEG_DCMSHIM_H
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
/// The DCMTK version this shim was built against ("3.6.7").
const char *dcmshim_version(void);
#ifdef __cplusplus
}
#endif
#endif

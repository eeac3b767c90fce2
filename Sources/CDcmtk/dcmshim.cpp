#include "dcmshim.h"
#include <dcmtk/dcmdata/dcuid.h>
extern "C" const char *dcmshim_version(void) { return OFFIS_DCMTK_VERSION_STRING; }

#ifndef UNIVERSEG_CSYSTEMD_SHIM_H
#define UNIVERSEG_CSYSTEMD_SHIM_H
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>
#endif

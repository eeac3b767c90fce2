#ifndef UNIVERSEG_CRDKAFKA_SHIM_H
#define UNIVERSEG_CRDKAFKA_SHIM_H
#include <librdkafka/rdkafka.h>
#endif

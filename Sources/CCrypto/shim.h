#ifndef UNIVERSEG_CCRYPTO_SHIM_H
#define UNIVERSEG_CCRYPTO_SHIM_H
// OpenSSL 3's libcrypto (Debian's libssl-dev, which librdkafka-dev already needs): SHA-256 through
// EVP, which uses the CPU's SHA extensions or AVX2 where present.
#include <openssl/evp.h>
#endif

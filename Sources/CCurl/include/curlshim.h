// One bounded HTTP(S) exchange through libcurl's easy interface, with libcurl loaded at the first
// call (dlopen of libcurl.so.4) instead of when the process starts.
#ifndef UNIVERSEG_CURLSHIM_H
#define UNIVERSEG_CURLSHIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// What ended an exchange that did not produce a response.
typedef enum {
    CURLSHIM_OK = 0,
    /// Connection refused or reset, DNS failure, TLS failure, the server closed without answering.
    CURLSHIM_UNREACHABLE = 1,
    /// The whole exchange did not finish within the time-out.
    CURLSHIM_TIMEOUT = 2,
    /// The declared or received body exceeded the limit (reading stopped there).
    CURLSHIM_TOO_LARGE = 3,
    /// The server's answer was not a usable HTTP response.
    CURLSHIM_INVALID_RESPONSE = 4,
    /// libcurl could not be loaded, or a handle could not be made.
    CURLSHIM_UNAVAILABLE = 5,
} curlshim_outcome;

typedef struct {
    const char *method;           // "GET", "POST", ...
    const char *url;              // http or https
    const char *const *headers;   // "Name: value" lines
    size_t header_count;
    const uint8_t *body;          // NULL: no body
    size_t body_length;
    int64_t timeout_ms;           // the whole exchange: connect, request, whole response
    size_t max_bytes;             // response body bound
    const char *ca_file;          // NULL: the system store only; else also the CAs in this PEM file
} curlshim_request;

typedef struct {
    int32_t outcome;              // curlshim_outcome
    int32_t status;               // the final response's status (0 when none)
    uint8_t *body;                // malloc'ed; NULL when empty
    size_t body_length;
    char *headers;                // the final response's header lines, "\r\n"-separated, malloc'ed
    size_t headers_length;
    int64_t declared_length;      // Content-Length of the final response, -1 when absent
    int32_t tls;                  // 1 when the failure was a TLS (certificate, handshake) one
    char message[256];            // libcurl's reason for a failure; never the URL's path or a body
} curlshim_response;

/// Opaque: a pool of easy handles (kept connections) for one client; thread-safe.
typedef struct curlshim_pool curlshim_pool;

curlshim_pool *curlshim_pool_create(void);
void curlshim_pool_destroy(curlshim_pool *pool);

/// Runs one exchange on the calling thread (blocking). Always fills `response`; free it with
/// curlshim_response_free.
void curlshim_send(curlshim_pool *pool, const curlshim_request *request, curlshim_response *response);
void curlshim_response_free(curlshim_response *response);

/// NULL when libcurl is loaded, else why not (loads it on first call).
const char *curlshim_load_error(void);
/// libcurl's version ("7.88.1"), or "" when it cannot be loaded.
const char *curlshim_version(void);

#ifdef __cplusplus
}
#endif

#endif

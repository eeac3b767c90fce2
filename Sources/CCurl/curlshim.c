// libcurl's easy interface for SegHTTP, with libcurl (libcurl.so.4 and the ~25 shared objects it
// pulls in: nghttp2, ssh2, ldap, Kerberos, GnuTLS for librtmp, ...) loaded at the first exchange
// instead of when the process starts: linking them costs every process about 10 ms of dynamic
// loading, and commands that never speak HTTP (segment, bench, eval) no longer pay it.
//
// <curl/curl.h> supplies the types and option numbers only; every function is looked up with
// dlsym, so the binary has no NEEDED entry for libcurl.
#define _GNU_SOURCE
#include "curlshim.h"

#include <curl/curl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define CURL_LIBRARY "libcurl.so.4"

static struct {
    CURLcode (*global_init)(long);
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    CURLcode (*easy_perform)(CURL *);
    CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
    void (*easy_cleanup)(CURL *);
    void (*easy_reset)(CURL *);
    const char *(*easy_strerror)(CURLcode);
    struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
    void (*slist_free_all)(struct curl_slist *);
    curl_version_info_data *(*version_info)(CURLversion);
} lib;

static int lib_loaded;
static char lib_error[300];
static char lib_version[32];
static pthread_once_t lib_once = PTHREAD_ONCE_INIT;

static void load_library(void) {
    void *handle = dlopen(CURL_LIBRARY, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        const char *reason = dlerror();
        snprintf(lib_error, sizeof lib_error, "HTTP unavailable: cannot load %s (%s)", CURL_LIBRARY,
                 reason ? reason : "unknown reason");
        return;
    }
#define RESOLVE(field, symbol)                                                                               \
    *(void **)(&lib.field) = dlsym(handle, symbol);                                                          \
    if (!lib.field) {                                                                                        \
        snprintf(lib_error, sizeof lib_error, "HTTP unavailable: %s lacks %s", CURL_LIBRARY, symbol);        \
        return;                                                                                              \
    }
    RESOLVE(global_init, "curl_global_init")
    RESOLVE(easy_init, "curl_easy_init")
    RESOLVE(easy_setopt, "curl_easy_setopt")
    RESOLVE(easy_perform, "curl_easy_perform")
    RESOLVE(easy_getinfo, "curl_easy_getinfo")
    RESOLVE(easy_cleanup, "curl_easy_cleanup")
    RESOLVE(easy_reset, "curl_easy_reset")
    RESOLVE(easy_strerror, "curl_easy_strerror")
    RESOLVE(slist_append, "curl_slist_append")
    RESOLVE(slist_free_all, "curl_slist_free_all")
    RESOLVE(version_info, "curl_version_info")
#undef RESOLVE
    // Once per process, before any handle exists (curl_global_init is not thread-safe).
    CURLcode code = lib.global_init(CURL_GLOBAL_DEFAULT);
    if (code != CURLE_OK) {
        snprintf(lib_error, sizeof lib_error, "HTTP unavailable: curl_global_init failed (%s)", lib.easy_strerror(code));
        return;
    }
    curl_version_info_data *info = lib.version_info(CURLVERSION_NOW);
    snprintf(lib_version, sizeof lib_version, "%s", info && info->version ? info->version : "?");
    lib_loaded = 1;
}

static int library_available(void) {
    pthread_once(&lib_once, load_library);
    return lib_loaded;
}

const char *curlshim_load_error(void) { return library_available() ? NULL : lib_error; }

const char *curlshim_version(void) { return library_available() ? lib_version : ""; }

// MARK: - Handle pool

// Idle easy handles keep their connections (keep-alive to the same store or PACS) and TLS sessions.
#define POOL_IDLE_MAX 8

struct curlshim_pool {
    pthread_mutex_t lock;
    CURL *idle[POOL_IDLE_MAX];
    int count;
};

curlshim_pool *curlshim_pool_create(void) {
    curlshim_pool *pool = calloc(1, sizeof *pool);
    if (pool) pthread_mutex_init(&pool->lock, NULL);
    return pool;
}

void curlshim_pool_destroy(curlshim_pool *pool) {
    if (!pool) return;
    for (int i = 0; i < pool->count; i++) lib.easy_cleanup(pool->idle[i]);
    pthread_mutex_destroy(&pool->lock);
    free(pool);
}

static CURL *pool_take(curlshim_pool *pool) {
    CURL *handle = NULL;
    pthread_mutex_lock(&pool->lock);
    if (pool->count > 0) handle = pool->idle[--pool->count];
    pthread_mutex_unlock(&pool->lock);
    if (handle) {
        lib.easy_reset(handle);  // options back to defaults; connections and caches stay
        return handle;
    }
    return lib.easy_init();
}

static void pool_return(curlshim_pool *pool, CURL *handle) {
    pthread_mutex_lock(&pool->lock);
    if (pool->count < POOL_IDLE_MAX) {
        pool->idle[pool->count++] = handle;
        handle = NULL;
    }
    pthread_mutex_unlock(&pool->lock);
    if (handle) lib.easy_cleanup(handle);
}

// MARK: - One exchange

typedef struct {
    size_t max_bytes;
    uint8_t *body;
    size_t length, capacity;
    char *headers;
    size_t headers_length, headers_capacity;
    int status;           // of the response whose headers are being read
    int64_t declared;     // its Content-Length, -1 when absent
    int over_limit;
    int headers_over_limit;  // more than HEADERS_MAX bytes of header lines
} exchange;

#define HEADERS_MAX (1 << 20)

// Grows *buffer to hold `needed` bytes: doubling, but never past `limit` (needed <= limit).
static int grow(void **buffer, size_t *capacity, size_t needed, size_t limit) {
    if (needed <= *capacity) return 1;
    size_t next = *capacity ? *capacity : 256;
    while (next < needed) next *= 2;
    if (next > limit) next = limit;
    void *moved = realloc(*buffer, next ? next : 1);
    if (!moved) return 0;
    *buffer = moved;
    *capacity = next;
    return 1;
}

// Called once per header line, status lines included; a new status line (after a 1xx, or a
// response libcurl reads past) starts the header set over.
static size_t on_header(char *data, size_t size, size_t count, void *user) {
    exchange *x = user;
    size_t n = size * count;
    if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        x->headers_length = 0;
        x->declared = -1;
        x->status = 0;
        const char *space = memchr(data, ' ', n);
        if (space && (size_t)(space - data) + 4 <= n) {
            int status = 0;
            for (int i = 1; i <= 3; i++) {
                char c = space[i];
                if (c < '0' || c > '9') { status = 0; break; }
                status = status * 10 + (c - '0');
            }
            x->status = status;
        }
        return n;
    }
    if (n <= 2 && (data[0] == '\r' || data[0] == '\n')) {
        // The end of this response's header section: refuse a final response that declares
        // more than the bound before any of its body is read.
        if (x->status >= 200 && x->declared > (int64_t)x->max_bytes) {
            x->over_limit = 1;
            return 0;
        }
        return n;
    }
    static const char length_name[] = "content-length:";
    if (n > sizeof length_name - 1 && strncasecmp(data, length_name, sizeof length_name - 1) == 0) {
        const char *p = data + sizeof length_name - 1;
        const char *end = data + n;
        while (p < end && (*p == ' ' || *p == '\t')) p++;
        int64_t value = 0;
        while (p < end && *p >= '0' && *p <= '9') {
            int digit = *p++ - '0';
            value = value > (INT64_MAX - digit) / 10 ? INT64_MAX : value * 10 + digit;
            x->declared = value;
        }
    }
    if (x->headers_length + n + 1 > HEADERS_MAX) {
        x->headers_over_limit = 1;
        return 0;
    }
    if (!grow((void **)&x->headers, &x->headers_capacity, x->headers_length + n + 1, HEADERS_MAX)) return 0;
    memcpy(x->headers + x->headers_length, data, n);
    x->headers_length += n;
    x->headers[x->headers_length] = '\0';
    return n;
}

static size_t on_body(char *data, size_t size, size_t count, void *user) {
    exchange *x = user;
    size_t n = size * count;
    if (n > x->max_bytes - x->length) {  // length <= max_bytes always holds
        x->over_limit = 1;
        return 0;  // libcurl stops reading at once (CURLE_WRITE_ERROR)
    }
    size_t needed = x->length + n;
    // With a Content-Length within the bound, the body is one allocation of that size.
    size_t hint = x->declared >= 0 && (uint64_t)x->declared <= x->max_bytes ? (size_t)x->declared : 0;
    if (!grow((void **)&x->body, &x->capacity, needed > hint ? needed : hint, x->max_bytes)) return 0;
    memcpy(x->body + x->length, data, n);
    x->length = needed;
    return n;
}

static int is_tls_failure(CURLcode code) {
    switch (code) {
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
        return 1;
    default:
        return 0;
    }
}

static curlshim_outcome outcome_of(CURLcode code, const exchange *x) {
    if (x->over_limit) return CURLSHIM_TOO_LARGE;
    if (x->headers_over_limit) return CURLSHIM_INVALID_RESPONSE;
    switch (code) {
    case CURLE_OK:
        return CURLSHIM_OK;
    case CURLE_OPERATION_TIMEDOUT:
        return CURLSHIM_TIMEOUT;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_TOO_MANY_REDIRECTS:
        return CURLSHIM_INVALID_RESPONSE;
    default:
        // Refused, reset, DNS, TLS, a connection closed mid-body (CURLE_PARTIAL_FILE,
        // CURLE_GOT_NOTHING, CURLE_RECV_ERROR): a server that is down or restarting.
        return CURLSHIM_UNREACHABLE;
    }
}

void curlshim_send(curlshim_pool *pool, const curlshim_request *request, curlshim_response *response) {
    memset(response, 0, sizeof *response);
    response->declared_length = -1;
    if (!library_available()) {
        response->outcome = CURLSHIM_UNAVAILABLE;
        snprintf(response->message, sizeof response->message, "%s", lib_error);
        return;
    }
    CURL *handle = pool ? pool_take(pool) : lib.easy_init();
    if (!handle) {
        response->outcome = CURLSHIM_UNAVAILABLE;
        snprintf(response->message, sizeof response->message, "curl_easy_init failed");
        return;
    }
    exchange x = {.max_bytes = request->max_bytes, .declared = -1};
    char error_text[CURL_ERROR_SIZE] = "";
    struct curl_slist *headers = NULL;
    int has_expect = 0;
    for (size_t i = 0; i < request->header_count; i++) {
        if (strncasecmp(request->headers[i], "expect:", 7) == 0) has_expect = 1;
        struct curl_slist *next = lib.slist_append(headers, request->headers[i]);
        if (!next) goto out_of_memory;
        headers = next;
    }
    if (!has_expect) {
        // No "Expect: 100-continue" wait (up to 1 s) before large bodies (STOW-RS uploads).
        struct curl_slist *next = lib.slist_append(headers, "Expect:");
        if (!next) goto out_of_memory;
        headers = next;
    }

    lib.easy_setopt(handle, CURLOPT_URL, request->url);
    lib.easy_setopt(handle, CURLOPT_NOSIGNAL, 1L);  // threads: time-outs without SIGALRM
#if LIBCURL_VERSION_NUM >= 0x075500
    if (lib.easy_setopt(handle, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK)
#endif
    {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
        lib.easy_setopt(handle, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#pragma GCC diagnostic pop
    }
    lib.easy_setopt(handle, CURLOPT_FOLLOWLOCATION, 0L);  // a 3xx is returned: credentials stay with this host
    lib.easy_setopt(handle, CURLOPT_TIMEOUT_MS, (long)(request->timeout_ms > 0 ? request->timeout_ms : 1));
    lib.easy_setopt(handle, CURLOPT_CONNECTTIMEOUT_MS, (long)(request->timeout_ms > 0 ? request->timeout_ms : 1));
    lib.easy_setopt(handle, CURLOPT_HTTPHEADER, headers);
    lib.easy_setopt(handle, CURLOPT_HEADERFUNCTION, on_header);
    lib.easy_setopt(handle, CURLOPT_HEADERDATA, &x);
    lib.easy_setopt(handle, CURLOPT_WRITEFUNCTION, on_body);
    lib.easy_setopt(handle, CURLOPT_WRITEDATA, &x);
    lib.easy_setopt(handle, CURLOPT_ERRORBUFFER, error_text);
    if (request->ca_file) {
        // With OpenSSL (Debian's libcurl4) both are trusted: the file and the system store's
        // hashed directory.
        lib.easy_setopt(handle, CURLOPT_CAINFO, request->ca_file);
        if (access("/etc/ssl/certs", R_OK) == 0) lib.easy_setopt(handle, CURLOPT_CAPATH, "/etc/ssl/certs");
    }
    const char *method = request->method ? request->method : "GET";
    if (strcmp(method, "GET") == 0 && !request->body) {
        lib.easy_setopt(handle, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(method, "HEAD") == 0) {
        lib.easy_setopt(handle, CURLOPT_NOBODY, 1L);
    } else {
        if (request->body || strcmp(method, "POST") == 0) {
            lib.easy_setopt(handle, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(request->body ? request->body_length : 0));
            lib.easy_setopt(handle, CURLOPT_POSTFIELDS, request->body ? (const char *)request->body : "");
        }
        if (strcmp(method, "POST") != 0) lib.easy_setopt(handle, CURLOPT_CUSTOMREQUEST, method);
    }

    CURLcode code = lib.easy_perform(handle);
    response->outcome = outcome_of(code, &x);
    long status = 0;
    lib.easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &status);
    if (x.headers_over_limit) {
        snprintf(response->message, sizeof response->message, "the response headers exceed %d bytes", HEADERS_MAX);
    }
    if (response->outcome == CURLSHIM_OK && status <= 0) {
        response->outcome = CURLSHIM_INVALID_RESPONSE;
        snprintf(response->message, sizeof response->message, "no HTTP status");
    }
    response->status = (int32_t)status;
    response->declared_length = x.declared;
    if (response->outcome != CURLSHIM_OK && response->outcome != CURLSHIM_TOO_LARGE && !response->message[0]) {
        response->tls = is_tls_failure(code);
        if (error_text[0]) {
            snprintf(response->message, sizeof response->message, "%s (%s)", lib.easy_strerror(code), error_text);
        } else {
            snprintf(response->message, sizeof response->message, "%s", lib.easy_strerror(code));
        }
    }
    if (response->outcome == CURLSHIM_OK) {
        response->body = x.body;
        response->body_length = x.length;
        response->headers = x.headers;
        response->headers_length = x.headers_length;
        x.body = NULL;
        x.headers = NULL;
    }
    free(x.body);
    free(x.headers);
    lib.slist_free_all(headers);
    // A handle whose exchange failed may hold a broken connection; libcurl closes those itself,
    // so the handle can go back either way.
    if (pool) pool_return(pool, handle); else lib.easy_cleanup(handle);
    return;

out_of_memory:
    lib.slist_free_all(headers);
    if (pool) pool_return(pool, handle); else lib.easy_cleanup(handle);
    response->outcome = CURLSHIM_UNAVAILABLE;
    snprintf(response->message, sizeof response->message, "out of memory");
}

void curlshim_response_free(curlshim_response *response) {
    free(response->body);
    free(response->headers);
    response->body = NULL;
    response->headers = NULL;
}

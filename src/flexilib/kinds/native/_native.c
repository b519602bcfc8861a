/*
 * _native.c - the per-request hot path of flexilib's native handler kind.
 *
 * flexilib.handlers.native loads a library with ctypes (dlopen, symbol
 * lookup, private copies) and hands the addresses of handle_request and
 * request_deinit to call() below, which does the per-request work that
 * ctypes made slow: lay the flexilib_request out in a per-thread buffer,
 * call the library without the GIL, then validate the response and copy it
 * into Python objects before request_deinit lets the library reuse it.
 *
 * The C interface is include/flexilib.h (DESIGN.md section 3).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flexilib.h"
#include "zigarena.h"

typedef flexilib_response *(*handle_request_fn)(flexilib_request *);
typedef void (*request_deinit_fn)(void);
typedef void (*zig_init_fn)(void *parent_allocator);

/* Raised for a response the server must not send (the caller answers 500). */
static PyObject *ResponseError;

/*
 * The per-thread request buffer (RESPONSE_PREALLOCATION_KB). The pointer is
 * thread-local for speed; the key only frees the buffer when a thread exits.
 */
struct arena {
    size_t size;
    _Alignas(max_align_t) char data[];
};

static _Thread_local struct arena *arena;
static pthread_key_t arena_key;
static size_t prealloc_size = 8 * 1024; /* written and read with the GIL held */

/* The thread's buffer at the configured size, or NULL (MemoryError set). */
static struct arena *thread_arena(void)
{
    if (arena != NULL && arena->size == prealloc_size)
        return arena;
    /* first call on this thread, or set_preallocation changed the size since */
    free(arena);
    arena = malloc(sizeof *arena + prealloc_size);
    pthread_setspecific(arena_key, arena);
    if (arena == NULL)
        return (struct arena *)PyErr_NoMemory();
    arena->size = prealloc_size;
    return arena;
}

/* Copies n bytes to *at and advances it; returns where they were copied. */
static char *put(char **at, const char *bytes, size_t n)
{
    char *start = *at;
    memcpy(start, bytes, n);
    *at += n;
    return start;
}

/* True if bytes hold CR, LF or NUL: bytes a library must never put on the wire. */
static int has_bad_byte(const char *bytes, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (bytes[i] == '\r' || bytes[i] == '\n' || bytes[i] == '\0')
            return 1;
    return 0;
}

/*
 * RFC 9110 token characters: what a header name may hold. The same rule as
 * flexilib.http.headers.is_token, which every other handler kind goes through.
 */
static int is_token(const char *bytes, size_t n)
{
    static const char tchar[] = "!#$%&'*+-.^_`|~";
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)bytes[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              (c != 0 && strchr(tchar, c) != NULL)))
            return 0;
    }
    return 1;
}

/* ASCII case-insensitive equality with a lower-case literal (no locale involved). */
static int name_is(const char *name, size_t n, const char *lower)
{
    if (n != strlen(lower))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != lower[i])
            return 0;
    }
    return 1;
}

/* Headers the server writes itself, since it frames the message. */
static int is_framing(const flexilib_header *h)
{
    return name_is(h->name_ptr, h->name_len, "content-length") ||
           name_is(h->name_ptr, h->name_len, "transfer-encoding") ||
           name_is(h->name_ptr, h->name_len, "connection");
}

/* Raises ResponseError for header i's value, naming the header (repr: safe to log). */
static PyObject *value_error(size_t i, const flexilib_header *h)
{
    Py_ssize_t shown = h->name_len < 64 ? (Py_ssize_t)h->name_len : 64;
    PyObject *name = PyUnicode_DecodeLatin1(h->name_ptr, shown, NULL);
    if (name != NULL) {
        PyErr_Format(ResponseError, "header %zu %R: value holds CR, LF or NUL", i, name);
        Py_DECREF(name);
    }
    return NULL;
}

/*
 * Validates the response's header array by the rules of flexilib.http.headers
 * and encodes the kept headers as "Name: value\r\n" lines; *typed says
 * whether one is a Content-Type (the writer adds the default otherwise).
 * Returns a new bytes object, or NULL with an exception set.
 */
static PyObject *encode_headers(const flexilib_response *r, int *typed_out)
{
    size_t size = 0;
    int typed = 0;
    if (r->headers_len != 0 && r->headers == NULL)
        return PyErr_Format(ResponseError, "headers is NULL with headers_len %zu",
                            r->headers_len);
    for (size_t i = 0; i < r->headers_len; i++) {
        const flexilib_header *h = &r->headers[i];
        if ((h->name_len != 0 && h->name_ptr == NULL) ||
            (h->value_len != 0 && h->value_ptr == NULL))
            return PyErr_Format(ResponseError,
                                "header %zu has a NULL pointer with a non-zero length", i);
        if (h->name_len == 0)
            return PyErr_Format(ResponseError, "header %zu has an empty name", i);
        if (h->name_len > PY_SSIZE_T_MAX / 4 || h->value_len > PY_SSIZE_T_MAX / 4)
            return PyErr_Format(ResponseError, "header %zu is too long", i);
        if (!is_token(h->name_ptr, h->name_len))
            return PyErr_Format(ResponseError,
                                "header %zu: name is not a token (no CR, LF or NUL, ':' or space)",
                                i);
        if (has_bad_byte(h->value_ptr, h->value_len))
            return value_error(i, h);
        if (is_framing(h))
            continue;
        typed = typed || name_is(h->name_ptr, h->name_len, "content-type");
        size += h->name_len + h->value_len + 4; /* ": " and CR LF */
        if (size > PY_SSIZE_T_MAX / 2)
            return PyErr_Format(ResponseError, "headers are too long");
    }
    *typed_out = typed;

    PyObject *encoded = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size);
    if (encoded == NULL)
        return NULL;
    char *at = PyBytes_AS_STRING(encoded);
    for (size_t i = 0; i < r->headers_len; i++) {
        const flexilib_header *h = &r->headers[i];
        if (is_framing(h))
            continue;
        put(&at, h->name_ptr, h->name_len);
        put(&at, ": ", 2);
        if (h->value_len != 0)
            put(&at, h->value_ptr, h->value_len);
        put(&at, "\r\n", 2);
    }
    return encoded;
}

/*
 * Copies a validated response out of the library's memory into
 * result[0..4] = status, reason or None, body, encoded headers, has Content-Type.
 * Returns 0, or -1 with an exception set (result items then released).
 */
static int copy_response(const flexilib_response *r, PyObject *result[])
{
    size_t status = r->status == 0 ? 200 : r->status;
    if (status < 100 || status > 999) {
        PyErr_Format(ResponseError, "status %zu outside 100-999", r->status);
        return -1;
    }
    if ((r->len != 0 && r->ptr == NULL) || (r->reason_len != 0 && r->reason_ptr == NULL)) {
        PyErr_SetString(ResponseError, "body or reason is NULL with a non-zero length");
        return -1;
    }
    if (r->len > PY_SSIZE_T_MAX || r->reason_len > PY_SSIZE_T_MAX) {
        PyErr_SetString(ResponseError, "body or reason is too long");
        return -1;
    }
    if (has_bad_byte(r->reason_ptr, r->reason_len)) {
        PyErr_SetString(ResponseError, "reason phrase holds CR, LF or NUL");
        return -1;
    }
    result[0] = PyLong_FromSize_t(status);
    if (r->reason_len == 0)
        result[1] = Py_NewRef(Py_None);
    else
        result[1] = PyUnicode_DecodeLatin1(r->reason_ptr, (Py_ssize_t)r->reason_len, NULL);
    result[2] = PyBytes_FromStringAndSize(r->len ? r->ptr : "", (Py_ssize_t)r->len);
    int typed = 0;
    result[3] = encode_headers(r, &typed);
    result[4] = PyBool_FromLong(typed);
    if (result[0] && result[1] && result[2] && result[3] && result[4])
        return 0;
    for (int i = 0; i < 5; i++)
        Py_CLEAR(result[i]);
    return -1;
}

/* Checks that item is a (bytes, bytes) tuple; returns 0, or -1 with TypeError set. */
static int check_header(PyObject *item)
{
    if (PyTuple_Check(item) && PyTuple_GET_SIZE(item) == 2 &&
        PyBytes_Check(PyTuple_GET_ITEM(item, 0)) && PyBytes_Check(PyTuple_GET_ITEM(item, 1)))
        return 0;
    PyErr_SetString(PyExc_TypeError, "headers must be (bytes, bytes) tuples");
    return -1;
}

#define BYTES_LEN(o) ((size_t)PyBytes_GET_SIZE(o))

/*
 * A Zig library returned NULL: ends the thread's arena request and raises
 * ResponseError, saying so when the arena refused an allocation first (the
 * usual reason: the per-request limit).
 */
static PyObject *zig_null_response(void)
{
    struct zig_figures figures;
    zig_arena_end(&figures);
    if (figures.refused == 0)
        PyErr_SetString(ResponseError, "handle_request returned NULL");
    else
        PyErr_Format(ResponseError,
                     "handle_request returned NULL after the Zig arena refused %zu "
                     "allocation(s) (it holds %zu bytes; the limit is %zu MiB per request)",
                     figures.refused, figures.alloc, ZIG_ARENA_LIMIT >> 20);
    return NULL;
}

/*
 * The crash board: cells in memory shared with the master (the scoreboard),
 * one per thread that calls libraries. A thread writes the library's marker
 * into its cell before the call and 0 after it, so when a library kills the
 * worker the master can read which library it was in, and quarantine it.
 * Two plain stores per call; nothing when no board is set.
 */
static volatile int32_t *crash_cells;
static size_t crash_count;
static atomic_size_t crash_next;
static _Thread_local volatile int32_t *crash_cell;

static volatile int32_t *thread_cell(void)
{
    if (crash_cells == NULL)
        return NULL;
    if (crash_cell == NULL) {
        size_t i = atomic_fetch_add(&crash_next, 1);
        crash_cell = &crash_cells[i < crash_count ? i : crash_count - 1];
    }
    return crash_cell;
}

/* set_crash_board(address, cells): where this process's threads mark their calls. */
static PyObject *native_set_crash_board(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "set_crash_board(address, cells)");
        return NULL;
    }
    void *address = PyLong_AsVoidPtr(args[0]);
    Py_ssize_t cells = PyLong_AsSsize_t(args[1]);
    if ((address == NULL || cells < 1) && !PyErr_Occurred())
        PyErr_SetString(PyExc_ValueError, "a crash board needs an address and at least one cell");
    if (PyErr_Occurred())
        return NULL;
    crash_cells = (volatile int32_t *)address;
    crash_count = (size_t)cells;
    atomic_store(&crash_next, 0);
    Py_RETURN_NONE;
}

/*
 * call(handle_request, request_deinit, method, target, headers, body[, zig_init[, marker]])
 *   -> (status, reason, body, raw_headers, typed, elapsed, prealloc, alloc)
 */
static PyObject *native_call(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs < 6 || nargs > 8) {
        PyErr_Format(PyExc_TypeError, "call() takes 6 to 8 arguments (%zd given)", nargs);
        return NULL;
    }
    handle_request_fn handle = (handle_request_fn)(uintptr_t)PyLong_AsVoidPtr(args[0]);
    if (handle == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "handle_request address is 0");
        return NULL;
    }
    request_deinit_fn deinit = (request_deinit_fn)(uintptr_t)PyLong_AsVoidPtr(args[1]);
    if (deinit == NULL && PyErr_Occurred())
        return NULL;
    int32_t marker = 0;
    if (nargs == 8) {
        marker = (int32_t)PyLong_AsLong(args[7]);
        if (marker == -1 && PyErr_Occurred())
            return NULL;
    }
    zig_init_fn zig_init = NULL;
    if (nargs >= 7) {
        zig_init = (zig_init_fn)(uintptr_t)PyLong_AsVoidPtr(args[6]);
        if (zig_init == NULL && PyErr_Occurred())
            return NULL;
    }
    PyObject *method = args[2], *target = args[3], *headers = args[4], *body = args[5];
    if (!PyBytes_Check(method) || !PyBytes_Check(target) || !PyBytes_Check(body) ||
        !PyList_Check(headers)) {
        PyErr_SetString(PyExc_TypeError,
                        "call() needs bytes method, target and body and a list of headers");
        return NULL;
    }

    /* Layout: request, header array, target, method NUL, then each name and value. */
    size_t count = (size_t)PyList_GET_SIZE(headers);
    size_t size = sizeof(flexilib_request) + count * sizeof(flexilib_header) +
                  BYTES_LEN(target) + BYTES_LEN(method) + 1;
    for (size_t i = 0; i < count; i++) {
        PyObject *item = PyList_GET_ITEM(headers, i);
        if (check_header(item) < 0)
            return NULL;
        size += BYTES_LEN(PyTuple_GET_ITEM(item, 0)) + BYTES_LEN(PyTuple_GET_ITEM(item, 1));
    }
    struct arena *own = thread_arena();
    if (own == NULL)
        return NULL;
    char *buffer = own->data, *one_off = NULL;
    size_t prealloc = size, alloc = 0;
    if (size > own->size) { /* does not fit: a buffer for this request alone */
        buffer = one_off = malloc(size);
        if (one_off == NULL)
            return PyErr_NoMemory();
        prealloc = 0;
        alloc = size;
    }

    /* No Python code runs from the size pass to here, so the list is unchanged. */
    flexilib_request *request = (flexilib_request *)buffer;
    flexilib_header *fields = (flexilib_header *)(request + 1);
    char *at = (char *)(fields + count);
    request->target = put(&at, PyBytes_AS_STRING(target), BYTES_LEN(target));
    request->target_len = BYTES_LEN(target);
    /* bytes objects keep a NUL after their data: copy it too */
    request->method = put(&at, PyBytes_AS_STRING(method), BYTES_LEN(method) + 1);
    request->method_len = BYTES_LEN(method);
    request->content = PyBytes_AS_STRING(body); /* not copied: held by a reference below */
    request->content_len = BYTES_LEN(body);
    request->headers = fields;
    request->headers_len = count;
    for (size_t i = 0; i < count; i++) {
        PyObject *name = PyTuple_GET_ITEM(PyList_GET_ITEM(headers, i), 0);
        PyObject *value = PyTuple_GET_ITEM(PyList_GET_ITEM(headers, i), 1);
        fields[i].name_ptr = put(&at, PyBytes_AS_STRING(name), BYTES_LEN(name));
        fields[i].name_len = BYTES_LEN(name);
        fields[i].value_ptr = put(&at, PyBytes_AS_STRING(value), BYTES_LEN(value));
        fields[i].value_len = BYTES_LEN(value);
    }

    /* A Zig library gets this thread's arena (zigarena.c) before each request. */
    void *zig_allocator = NULL;
    if (zig_init != NULL && (zig_allocator = zig_arena_begin(own->size)) == NULL) {
        free(one_off);
        return PyErr_NoMemory();
    }

    /* The library runs without the GIL; elapsed excludes any wait to get it back. */
    flexilib_response *response;
    struct timespec t0, t1;
    volatile int32_t *cell = marker != 0 ? thread_cell() : NULL;
    if (cell != NULL)
        *cell = marker; /* until the library's memory has been read and released */
    Py_INCREF(body);
    Py_BEGIN_ALLOW_THREADS
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (zig_init != NULL)
        zig_init(zig_allocator);
    response = handle(request);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    Py_END_ALLOW_THREADS
    Py_DECREF(body);
    free(one_off); /* the request is valid only during the call */
    double elapsed = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;

    if (response == NULL) {
        if (cell != NULL)
            *cell = 0;
        if (zig_init != NULL)
            return zig_null_response();
        PyErr_SetString(ResponseError, "handle_request returned NULL");
        return NULL;
    }
    /* Copy out (or fail) while the library's memory is still valid, then release it. */
    PyObject *items[8] = {NULL};
    int copied = copy_response(response, items);
    if (deinit != NULL) {
        /* A pending exception stays with this thread's state meanwhile. */
        Py_BEGIN_ALLOW_THREADS
        deinit();
        Py_END_ALLOW_THREADS
    }
    if (cell != NULL)
        *cell = 0;
    if (zig_init != NULL) { /* the arena's figures, as the original logs them */
        struct zig_figures figures;
        zig_arena_end(&figures);
        prealloc = figures.prealloc;
        alloc = figures.alloc;
    }
    if (copied < 0)
        return NULL;
    if (zig_init == NULL)
        alloc += BYTES_LEN(items[2]) + BYTES_LEN(items[3]);
    items[5] = PyFloat_FromDouble(elapsed);
    items[6] = PyLong_FromSize_t(prealloc);
    items[7] = PyLong_FromSize_t(alloc);
    PyObject *result = NULL;
    if (items[5] && items[6] && items[7])
        result = PyTuple_New(8);
    for (int i = 0; i < 8; i++) {
        if (result != NULL)
            PyTuple_SET_ITEM(result, i, items[i]); /* the tuple takes the reference */
        else
            Py_XDECREF(items[i]);
    }
    return result;
}

/* set_preallocation(kb): the per-thread request buffer size, in KiB. */
static PyObject *native_set_preallocation(PyObject *module, PyObject *arg)
{
    (void)module;
    Py_ssize_t kb = PyLong_AsSsize_t(arg);
    if (kb == -1 && PyErr_Occurred())
        return NULL;
    if (kb < 1 || (size_t)kb > SIZE_MAX / 2048) {
        PyErr_Format(PyExc_ValueError, "preallocation must be at least 1 KiB (got %zd)", kb);
        return NULL;
    }
    prealloc_size = (size_t)kb * 1024;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"call", (PyCFunction)(void (*)(void))native_call, METH_FASTCALL,
     "call(handle_request, request_deinit, method, target, headers, body[, zig_init[, marker]])\n"
     "--\n\n"
     "Call a native handler through the flexilib C interface.\n\n"
     "handle_request and request_deinit are function addresses (request_deinit 0\n"
     "if the library has none); zig_init the address of the library's zigInit,\n"
     "called with the thread's arena allocator before handle_request (0 or\n"
     "omitted if it has none). Returns (status, reason or None, body,\n"
     "raw_headers, typed, elapsed, prealloc, alloc): raw_headers are encoded\n"
     "'Name: value\\r\\n' lines without framing headers, typed whether one\n"
     "is a Content-Type, elapsed the seconds\n"
     "handle_request ran, prealloc and alloc the bytes used in the thread's\n"
     "buffer and allocated for this request (for a Zig library: the arena's\n"
     "pre-warmed capacity and its capacity at the end). marker (non-zero) is\n"
     "written to this thread's crash-board cell for the call (set_crash_board).\n"
     "Raises ResponseError for a response that must not be sent."},
    {"set_crash_board", (PyCFunction)(void (*)(void))native_set_crash_board, METH_FASTCALL,
     "set_crash_board(address, cells)\n--\n\n"
     "Cells (int32, in memory shared with the master) where each thread marks the\n"
     "library it is calling: call()'s marker, 0 between calls."},
    {"set_preallocation", native_set_preallocation, METH_O,
     "set_preallocation(kb)\n--\n\nSet the per-thread request buffer size in KiB."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "flexilib._native",
    .m_doc = "The native handler kind's per-request path, in C (see _native.c).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__native(void)
{
    if (pthread_key_create(&arena_key, free) != 0 || zig_arena_setup() < 0)
        return PyErr_NoMemory();
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL)
        return NULL;
    ResponseError = PyErr_NewExceptionWithDoc(
        "flexilib._native.ResponseError",
        "A native handler returned a response the server must not send.", NULL, NULL);
    if (ResponseError == NULL ||
        PyModule_AddObjectRef(module, "ResponseError", ResponseError) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}

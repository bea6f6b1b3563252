/* Growable buffers and buffer arguments (see kernel.h). */
#include "kernel.h"

int buf_reserve(Buf *b, size_t extra) {
    if (b->len + extra <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 1 << 12;
    while (cap < b->len + extra) cap *= 2;
    char *p = PyMem_RawRealloc(b->data, cap);
    if (!p) return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

int buf_append(Buf *b, const void *src, size_t n) {
    if (buf_reserve(b, n)) return -1;
    memcpy(b->data + b->len, src, n);
    b->len += n;
    return 0;
}

int buf_grow(Buf *b, size_t extra) {
    if (buf_reserve(b, extra)) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

int buf_put(Buf *b, const void *src, size_t n) {
    if (buf_append(b, src, n)) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

void buf_free(Buf *b) {
    PyMem_RawFree(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

PyObject *buf_bytes(const Buf *b) { return PyBytes_FromStringAndSize(b->data ? b->data : "", (Py_ssize_t)b->len); }

int get_buf(PyObject *obj, Py_buffer *view, Py_ssize_t itemsize, const char *kinds, int writable, const char *name) {
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0) return -1;
    const char *fmt = view->format ? view->format : "B";
    if (*fmt == '<' || *fmt == '=' || *fmt == '@') fmt++;
    if (view->itemsize != itemsize || strchr(kinds, *fmt) == NULL || fmt[1] != '\0') {
        PyErr_Format(PyExc_TypeError, "%s: expected a contiguous buffer of %zd-byte items (format %s), got '%s'",
                     name, itemsize, kinds, view->format ? view->format : "B");
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

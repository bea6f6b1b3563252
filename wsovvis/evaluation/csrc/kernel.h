/*
 * Compiled kernel of the video mask AP: the module wsovvis.evaluation._rle_kernel (Python side: kernel.py).
 *
 *   parse.c   one pass per compressed-RLE string: validity, area, box and merged foreground intervals
 *   frames.c  scan (parse every frame of a list of tracks), intersect (|a ∩ b| of same-bucket frame pairs:
 *             box prefilter, then a linear merge of interval lists), frames_ok (fast input check)
 *   greedy.c  the official greedy matching of every (video, category) group, area range and threshold
 *   results.c parse_results (a results file of the common shape straight into flat tables, no Python object per
 *             frame; declines anything else) and flat_item (one result's frames as Python objects)
 *   module.c  the method table
 *
 * Compressed counts (the COCO string format): one value per run of chars; each char is 48 + a 6-bit chunk,
 * low 5 bits of payload first, 0x20 = more chunks follow, 0x10 in the last chunk = negative (sign-extended);
 * from the 4th value on, a value is a delta against the value two places back. Values alternate background /
 * foreground runs, column-major, starting with background.
 *
 * Inputs are buffers (numpy arrays) and plain lists/dicts; outputs are bytes objects or caller-owned writable
 * buffers. No numpy C API, so the module builds against the Python headers only.
 */
#ifndef WSOVVIS_KERNEL_H
#define WSOVVIS_KERNEL_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define KERNEL_ABI 2 /* kernel.ABI must match: a stale build is not used */
/* A value of a valid string fits 33 bits (a delta of two uint32): 7 chunks. More is garbage. */
#define MAX_CHUNKS 12
#define CAPSULE_NAME "wsovvis.evaluation._rle_kernel.frames"

/* buffer format chars accepted for each item type */
#define I64 "qlL"
#define U8 "B?b"
#define F64 "d"

/* A growable byte buffer in PyMem_Raw memory (visible to tracemalloc, so peak-memory reports include it). */
typedef struct {
    char *data;
    size_t len, cap;
} Buf;

int buf_grow(Buf *b, size_t extra);
int buf_put(Buf *b, const void *src, size_t n);
/* the same without setting a Python error (safe without the GIL: PyMem_Raw); -1 when out of memory */
int buf_reserve(Buf *b, size_t extra);
int buf_append(Buf *b, const void *src, size_t n);
void buf_free(Buf *b);
PyObject *buf_bytes(const Buf *b);

/* A C-contiguous buffer argument of `itemsize`-byte items whose format char is one of `kinds`. */
int get_buf(PyObject *obj, Py_buffer *view, Py_ssize_t itemsize, const char *kinds, int writable, const char *name);

typedef struct {
    uint32_t start, end; /* foreground pixels [start, end) in column-major order */
} Interval;

typedef struct {
    int64_t lo, hi;   /* first foreground pixel, one past the last (column-major positions); 0, 0 if empty */
    int64_t ylo, yhi; /* row range, inclusive (h, -1 if empty) */
} Box;

int parse_counts(const unsigned char *s, Py_ssize_t n, int64_t h, int64_t pixels, Buf *runs, int64_t *area,
                 Box *box);
int parse_area(const unsigned char *s, Py_ssize_t n, int64_t pixels, int64_t *area);

extern PyObject *counts_key, *size_key; /* interned "counts" / "size" */

/* A results file parsed by parse_results (results.c): result i owns frames seg_start[i]:seg_start[i+1]; frame k
 * is null when frame_len[k] < 0, else its counts are data[frame_off[k]:frame_off[k] + frame_len[k]]. */
#define FLAT_CAPSULE_NAME "wsovvis.evaluation._rle_kernel.flat"
typedef struct {
    const unsigned char *data;
    int64_t n;
    const int64_t *seg_start, *frame_off, *frame_len;
} FlatView;
int flat_view(PyObject *cap, FlatView *out); /* -1 with an error set if cap is not a parse_results capsule */

PyObject *scan(PyObject *self, PyObject *args);
PyObject *intersect(PyObject *self, PyObject *args);
PyObject *frames_ok(PyObject *self, PyObject *args);
PyObject *release(PyObject *self, PyObject *unused);
PyObject *greedy(PyObject *self, PyObject *args);
PyObject *parse_results(PyObject *self, PyObject *args);
PyObject *flat_item(PyObject *self, PyObject *args);
extern const char scan_doc[], intersect_doc[], frames_ok_doc[], release_doc[], greedy_doc[], parse_results_doc[],
    flat_item_doc[];

#endif

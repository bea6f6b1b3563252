/*
 * The module wsovvis.data._rle_encode: instance-id map -> one compressed COCO RLE per id, in one pass.
 * Python side: wsovvis/data/rle.py (encode_id_maps), which falls back to its numpy encoder when this is not built.
 *
 * encode_frame(ids) walks the map once in column-major (COCO) order, collecting the runs of equal non-zero ids,
 * groups them by id and writes, per id, the counts string (COCO's rleToString), the pixel count and the
 * [x, y, w, h] box (pycocotools toBbox). Strings, areas and boxes equal the numpy path and pycocotools.
 * No numpy C API: the map comes in through the buffer protocol, so the module builds against the Python headers.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ENCODE_ABI 1 /* rle.py checks it: a stale build is not used */

typedef struct {
    int64_t val, start, end; /* pixels [start, end) of the frame in column-major order */
} Run;

typedef struct {
    Run *data;
    size_t len, cap;
} Runs;

/* `data` (PyMem_Raw, `*cap` items of `item` bytes) grown by doubling to hold at least `need` items; the new
 * pointer, or NULL with `data` and `*cap` untouched. Raises nothing, so it is safe without the GIL. */
static void *grow(void *data, size_t *cap, size_t need, size_t item, size_t first_cap) {
    if (need <= *cap) return data;
    size_t c = *cap ? *cap : first_cap;
    while (c < need) c *= 2;
    void *d = PyMem_RawRealloc(data, c * item);
    if (d) *cap = c;
    return d;
}

static int runs_push(Runs *r, int64_t val, int64_t start, int64_t end) {
    Run *d = grow(r->data, &r->cap, r->len + 1, sizeof(Run), 1024);
    if (!d) return -1;
    r->data = d;
    r->data[r->len++] = (Run){val, start, end};
    return 0;
}

static int by_id_then_start(const void *pa, const void *pb) {
    const Run *a = pa, *b = pb;
    if (a->val != b->val) return a->val < b->val ? -1 : 1;
    return (a->start > b->start) - (a->start < b->start);
}

typedef struct {
    int64_t *data;
    size_t len, cap;
} I64s;

static int i64_push(I64s *v, int64_t x) {
    int64_t *d = grow(v->data, &v->cap, v->len + 1, sizeof(int64_t), 4096);
    if (!d) return -1;
    v->data = d;
    v->data[v->len++] = x;
    return 0;
}

/* Bytes of a row compared at once before looking at single items: most rows of a mask equal the row above
 * over long stretches, and memcmp skips those at memory speed. */
#define BLOCK_BYTES 64

/*
 * collect_<T>(a, h, w, row_stride, runs, starts, per_col): the runs of equal ids of one [h, w] map in COCO's
 * column-major order, without reading the map column by column (a cache miss per pixel on large frames).
 * A run starts at pixel 0, where a pixel differs from the one above it, and at the top of a column whose first
 * pixel differs from the previous column's last. Those starts are found row by row, sorted by column with a
 * counting sort (rows stay ascending within a column, the order they were found in), and each becomes a run
 * to the next start; runs of id 0 (background) are not kept. `per_col` holds w + 1 zeroed counters.
 */
#define DEFINE_COLLECT(NAME, T)                                                                           \
    static int NAME(const char *a, Py_ssize_t h, Py_ssize_t w, Py_ssize_t rs, Runs *runs, I64s *starts,  \
                    Py_ssize_t *per_col) {                                                                \
        const T *top = (const T *)a, *bottom = (const T *)(a + (h - 1) * rs);                             \
        const Py_ssize_t block = BLOCK_BYTES / (Py_ssize_t)sizeof(T);                                     \
        if (i64_push(starts, 0) < 0) return -1;                                                           \
        per_col[0]++;                                                                                     \
        for (Py_ssize_t x = 1; x < w; x++)                                                                \
            if (top[x] != bottom[x - 1]) {                                                                \
                if (i64_push(starts, (int64_t)x * h) < 0) return -1;                                      \
                per_col[x]++;                                                                             \
            }                                                                                             \
        for (Py_ssize_t y = 1; y < h; y++) {                                                              \
            const T *up = (const T *)(a + (y - 1) * rs), *row = (const T *)(a + y * rs);                  \
            for (Py_ssize_t x0 = 0; x0 < w; x0 += block) {                                                \
                Py_ssize_t x1 = x0 + block < w ? x0 + block : w;                                          \
                if (memcmp(up + x0, row + x0, (size_t)(x1 - x0) * sizeof(T)) == 0) continue;              \
                for (Py_ssize_t x = x0; x < x1; x++)                                                      \
                    if (up[x] != row[x]) {                                                                \
                        if (i64_push(starts, (int64_t)x * h + y) < 0) return -1;                          \
                        per_col[x]++;                                                                     \
                    }                                                                                     \
            }                                                                                             \
        }                                                                                                 \
        size_t n = starts->len;                                                                           \
        int64_t *sorted = PyMem_RawMalloc((n + 1) * sizeof(int64_t));                                     \
        if (!sorted) return -1;                                                                           \
        Py_ssize_t offset = 0;                                                                            \
        for (Py_ssize_t x = 0; x < w; x++) {                                                              \
            Py_ssize_t c = per_col[x];                                                                    \
            per_col[x] = offset;                                                                          \
            offset += c;                                                                                  \
        }                                                                                                 \
        for (size_t i = 0; i < n; i++) sorted[per_col[starts->data[i] / h]++] = starts->data[i];          \
        sorted[n] = (int64_t)h * w;                                                                       \
        int rc = 0;                                                                                       \
        for (size_t i = 0; i < n && rc == 0; i++) {                                                       \
            int64_t p = sorted[i], v = (int64_t) * (const T *)(a + (p % h) * rs + (p / h) * sizeof(T));   \
            if (v != 0) rc = runs_push(runs, v, p, sorted[i + 1]);                                        \
        }                                                                                                 \
        PyMem_RawFree(sorted);                                                                            \
        return rc;                                                                                        \
    }

DEFINE_COLLECT(collect_u8, uint8_t)
DEFINE_COLLECT(collect_i8, int8_t)
DEFINE_COLLECT(collect_u16, uint16_t)
DEFINE_COLLECT(collect_i16, int16_t)
DEFINE_COLLECT(collect_u32, uint32_t)
DEFINE_COLLECT(collect_i32, int32_t)
DEFINE_COLLECT(collect_u64, uint64_t)
DEFINE_COLLECT(collect_i64, int64_t)

/* One value in COCO's string form (the caller has already taken the delta against the count two back). */
static int put_count(char **out, size_t *len, size_t *cap, int64_t x) {
    char *d = grow(*out, cap, *len + 16, 1, 64); /* a value takes at most 13 chars */
    if (!d) return -1;
    *out = d;
    int more = 1;
    while (more) {
        int64_t c = x & 0x1f;
        x >>= 5; /* arithmetic shift, as in rleToString's `long` */
        more = (c & 0x10) ? x != -1 : x != 0;
        if (more) c |= 0x20;
        (*out)[(*len)++] = (char)(c + 48);
    }
    return 0;
}

static PyObject *group_item(const Run *g, size_t n, Py_ssize_t h, Py_ssize_t w, char **text, size_t *cap) {
    int64_t hw = (int64_t)h * w, prev_end = 0, area = 0, c2 = 0, c1 = 0; /* c2, c1: counts two and one back */
    int64_t x0 = INT64_MAX, x1 = -1, y0 = INT64_MAX, y1 = -1;
    size_t len = 0, k = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t vals[2] = {g[i].start - prev_end, g[i].end - g[i].start};
        for (int j = 0; j < 2; j++, k++) {
            int64_t v = vals[j], x = k > 2 ? v - c2 : v;
            if (put_count(text, &len, cap, x) < 0) return PyErr_NoMemory();
            c2 = c1;
            c1 = v;
        }
        prev_end = g[i].end;
        area += g[i].end - g[i].start;
        int64_t col0 = g[i].start / h, col1 = (g[i].end - 1) / h;
        int64_t ylo = col1 > col0 ? 0 : g[i].start % h, yhi = col1 > col0 ? h - 1 : (g[i].end - 1) % h;
        if (col0 < x0) x0 = col0;
        if (col1 > x1) x1 = col1;
        if (ylo < y0) y0 = ylo;
        if (yhi > y1) y1 = yhi;
    }
    if (hw - prev_end != 0) { /* pycocotools ends on the last run of ones, so a zero tail is not written */
        int64_t v = hw - prev_end, x = k > 2 ? v - c2 : v;
        if (put_count(text, &len, cap, x) < 0) return PyErr_NoMemory();
    }
    PyObject *counts = PyUnicode_DecodeASCII(*text, (Py_ssize_t)len, NULL);
    PyObject *rle = PyDict_New();
    PyObject *size = Py_BuildValue("[nn]", h, w);
    PyObject *box = Py_BuildValue("[dddd]", (double)x0, (double)y0, (double)(x1 - x0 + 1), (double)(y1 - y0 + 1));
    PyObject *item = NULL;
    if (counts && rle && size && box && PyDict_SetItemString(rle, "size", size) == 0 &&
        PyDict_SetItemString(rle, "counts", counts) == 0)
        item = Py_BuildValue("(LOLO)", (long long)g[0].val, rle, (long long)area, box);
    Py_XDECREF(counts);
    Py_XDECREF(rle);
    Py_XDECREF(size);
    Py_XDECREF(box);
    return item;
}

static const char encode_frame_doc[] =
    "encode_frame(ids) -> [(track_id, {'size': [H, W], 'counts': str}, area, [x, y, w, h]), ...]\n\n"
    "ids: an [H, W] buffer of native 1/2/4/8-byte integers (0 = background), rows at any stride. One item per\n"
    "non-zero id, ids ascending.";

static PyObject *encode_frame(PyObject *self, PyObject *args) {
    PyObject *obj;
    if (!PyArg_ParseTuple(args, "O", &obj)) return NULL;
    Py_buffer view;
    /* rows may be padded (the PNG reader's strided views): only the items of a row must be adjacent */
    if (PyObject_GetBuffer(obj, &view, PyBUF_STRIDES | PyBUF_FORMAT) < 0) return NULL;
    PyObject *result = NULL;
    Runs runs = {NULL, 0, 0};
    char *text = NULL;
    size_t cap = 0;
    const char *fmt = view.format ? view.format : "B";
    if (*fmt == '@' || *fmt == '=' || *fmt == '<') fmt++; /* native little-endian only (x86_64 / arm64) */
    if (view.ndim != 2 || strlen(fmt) != 1 || !strchr("bBhHiIlLqQ?", *fmt)) {
        PyErr_Format(PyExc_ValueError, "encode_frame: ids must be a 2-D array of native integers (got %d-D, "
                     "format '%s')", view.ndim, view.format ? view.format : "B");
        goto done;
    }
    Py_ssize_t h = view.shape[0], w = view.shape[1], row_stride = view.strides[0];
    if (w > 1 && view.strides[1] != view.itemsize) {
        PyErr_SetString(PyExc_ValueError, "encode_frame: the items of a row must be adjacent");
        goto done;
    }
    result = PyList_New(0);
    if (!result || h == 0 || w == 0) goto done;
    int is_signed = strchr("bhilq", *fmt) != NULL, rc = -1;
    I64s starts = {NULL, 0, 0};
    Py_ssize_t *per_col = PyMem_RawCalloc((size_t)w + 1, sizeof(Py_ssize_t));
    if (per_col) {
        const char *a = (const char *)view.buf;
        Py_BEGIN_ALLOW_THREADS /* no Python objects are touched while the pixels are read */
        switch (view.itemsize * (is_signed ? -1 : 1)) {
            case 1: rc = collect_u8(a, h, w, row_stride, &runs, &starts, per_col); break;
            case -1: rc = collect_i8(a, h, w, row_stride, &runs, &starts, per_col); break;
            case 2: rc = collect_u16(a, h, w, row_stride, &runs, &starts, per_col); break;
            case -2: rc = collect_i16(a, h, w, row_stride, &runs, &starts, per_col); break;
            case 4: rc = collect_u32(a, h, w, row_stride, &runs, &starts, per_col); break;
            case -4: rc = collect_i32(a, h, w, row_stride, &runs, &starts, per_col); break;
            case 8: rc = collect_u64(a, h, w, row_stride, &runs, &starts, per_col); break;
            case -8: rc = collect_i64(a, h, w, row_stride, &runs, &starts, per_col); break;
        }
        Py_END_ALLOW_THREADS
    }
    PyMem_RawFree(per_col);
    PyMem_RawFree(starts.data);
    if (rc < 0) {
        PyErr_NoMemory();
        Py_CLEAR(result);
        goto done;
    }
    qsort(runs.data, runs.len, sizeof(Run), by_id_then_start);
    for (size_t lo = 0, hi; lo < runs.len; lo = hi) {
        for (hi = lo + 1; hi < runs.len && runs.data[hi].val == runs.data[lo].val;) hi++;
        PyObject *item = group_item(runs.data + lo, hi - lo, h, w, &text, &cap);
        if (!item || PyList_Append(result, item) < 0) {
            Py_XDECREF(item);
            Py_CLEAR(result);
            goto done;
        }
        Py_DECREF(item);
    }
done:
    PyMem_RawFree(runs.data);
    PyMem_RawFree(text);
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef methods[] = {
    {"encode_frame", encode_frame, METH_VARARGS, encode_frame_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_rle_encode",
                                    "Instance-id maps to compressed COCO RLE, one pass per map.", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__rle_encode(void) {
    PyObject *m = PyModule_Create(&module);
    if (m && PyModule_AddIntConstant(m, "ABI", ENCODE_ABI) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

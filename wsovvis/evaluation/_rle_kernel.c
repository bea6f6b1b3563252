/*
 * Compiled kernel of the video mask AP (wsovvis.evaluation._rle_kernel); Python side: kernel.py.
 *
 * scan       one pass per compressed-RLE string: validate it, its area, its box and its foreground
 *            intervals (kept in a capsule for `intersect`).
 * intersect  |a ∩ b| for every same-bucket pair of frames (bucket = group x frame), box prefilter, then a
 *            linear merge of the two interval lists; sums land in out[a_slot + b_slot].
 * greedy     the official greedy matching of every (video, category) group, all area ranges and thresholds.
 *
 * Compressed counts (the COCO string format): one value per run of chars; each char is 48 + a 6-bit
 * chunk, low 5 bits of payload first, 0x20 = more chunks follow, 0x10 in the last chunk = negative
 * (sign-extended); from the 4th value on, a value is a delta against the value two places back. Values
 * alternate background / foreground runs, column-major, starting with background.
 *
 * Inputs are buffers (numpy arrays) and plain lists/dicts; outputs are bytes objects or caller-owned
 * writable buffers. No numpy C API, so the module builds against Python headers only.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define KERNEL_ABI 1
/* A value of a valid string fits 33 bits (a delta of two uint32): 7 chunks. More is garbage. */
#define MAX_CHUNKS 12
#define CAPSULE_NAME "wsovvis.evaluation._rle_kernel.frames"

/* ------------------------------------------------------------------ growable buffers (traced memory) */

typedef struct {
    char *data;
    size_t len, cap;
} Buf;

static int buf_grow(Buf *b, size_t extra) {
    if (b->len + extra <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 1 << 12;
    while (cap < b->len + extra) cap *= 2;
    /* PyMem_Raw*: visible to tracemalloc, so the bench's peak memory includes the kernel's buffers */
    char *p = PyMem_RawRealloc(b->data, cap);
    if (!p) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

static int buf_put(Buf *b, const void *src, size_t n) {
    if (buf_grow(b, n)) return -1;
    memcpy(b->data + b->len, src, n);
    b->len += n;
    return 0;
}

static void buf_free(Buf *b) {
    PyMem_RawFree(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static PyObject *buf_bytes(Buf *b) { return PyBytes_FromStringAndSize(b->data ? b->data : "", (Py_ssize_t)b->len); }

/* ------------------------------------------------------------------ buffer arguments */

/* A C-contiguous buffer of `itemsize`-byte items whose format char is one of `kinds`; n = item count. */
static int get_buf(PyObject *obj, Py_buffer *view, Py_ssize_t itemsize, const char *kinds, int writable,
                   const char *name) {
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

#define I64 "qlL"
#define U8 "B?b"
#define F64 "d"

/* ------------------------------------------------------------------ parsing */

typedef struct {
    uint32_t start, end; /* foreground pixels [start, end) in column-major order */
} Interval;

typedef struct {
    int64_t lo, hi;   /* first foreground pixel, one past the last (column-major positions) */
    int64_t ylo, yhi; /* row range, inclusive */
} Box;

static inline int next_value_slow(const unsigned char *s, Py_ssize_t n, Py_ssize_t *pp, int64_t *x) {
    Py_ssize_t p = *pp;
    unsigned c = (unsigned)s[p++] - 48u;
    if (c > 63u) return 1;
    uint64_t v = c & 0x1f;
    int shift = 5;
    while (c & 0x20) {
        if (p >= n || shift >= 5 * MAX_CHUNKS) return 1; /* runs past the end, or absurdly long */
        c = (unsigned)s[p++] - 48u;
        if (c > 63u) return 1;
        v |= (uint64_t)(c & 0x1f) << shift;
        shift += 5;
    }
    *pp = p;
    uint64_t sign = (uint64_t)1 << (shift - 1); /* 0x10 of the last chunk: sign-extend without a branch */
    *x = (int64_t)((v ^ sign) - sign);
    return 0;
}

/* Decode the value starting at s[*pp] into *x; 1 if the chars are not a valid value. s[n] must be readable
 * (str and bytes data end with a NUL). Values of one or two chars, nearly all of them, take no branch on
 * their length (it is random, so a branch would be mispredicted half of the time). */
static inline int next_value(const unsigned char *s, Py_ssize_t n, Py_ssize_t *pp, int64_t *x) {
    Py_ssize_t p = *pp;
    unsigned c0 = (unsigned)s[p] - 48u, c1 = (unsigned)s[p + 1] - 48u;
    unsigned two = (c0 >> 5) & 1; /* c0 has the "more" bit */
    if ((c0 > 63u) | (two & ((c1 > 63u) | (c1 >> 5)))) return next_value_slow(s, n, pp, x);
    int64_t v1 = (int64_t)(c0 & 0x1f) - (int64_t)((c0 & 0x10) << 1);
    int64_t v2 = (int64_t)(c0 & 0x1f) + ((int64_t)(c1 & 0x1f) - (int64_t)((c1 & 0x10) << 1)) * 32;
    *x = two ? v2 : v1;
    *pp = p + 1 + two;
    return 0;
}

static int parse_counts(const unsigned char *s, Py_ssize_t n, int64_t h, int64_t pixels, Buf *runs,
                        int64_t *area, Box *box) {
    if (buf_grow(runs, (size_t)(n / 2 + 1) * sizeof(Interval))) return -1;
    Interval *const first = (Interval *)(runs->data + runs->len);
    Interval *iv = first;
    int64_t bg = 0, fg = 0;
    int64_t m = 0, pos = 0, col = 0;
    int64_t ylo = h, yhi = -1, lo = 0, hi = 0;
    Py_ssize_t p = 0;
    while (p < n) {
        int64_t x;
        if (next_value(s, n, &p, &x)) return 1;
        if (m > 2) x += bg;
        if (x < 0 || x > pixels - pos) return 1;
        bg = x;
        pos += x;
        if (pos - col >= h) col = pos - col < 2 * h ? col + h : pos - (pos % h);
        if (p >= n) break;
        if (next_value(s, n, &p, &x)) return 1;
        if (m >= 2) x += fg;
        if (x < 0 || x > pixels - pos) return 1;
        fg = x;
        m += 2;
        if (x == 0) continue;
        if (iv > first && iv[-1].end == (uint64_t)pos) {
            iv[-1].end = (uint32_t)(pos + x);
        } else {
            iv->start = (uint32_t)pos;
            iv->end = (uint32_t)(pos + x);
            iv++;
        }
        int64_t r0 = pos - col, r1 = r0 + x - 1;
        if (r1 >= h) { r0 = 0; r1 = h - 1; }
        ylo = r0 < ylo ? r0 : ylo;
        yhi = r1 > yhi ? r1 : yhi;
        if (hi == 0) lo = pos;
        pos += x;
        hi = pos;
        if (pos - col >= h) col = pos - col < 2 * h ? col + h : pos - (pos % h);
    }
    if (pos != pixels) return 1;
    int64_t a = 0;
    for (Interval *q = first; q < iv; q++) a += q->end - q->start;
    runs->len += (size_t)((char *)iv - (char *)first);
    *area = a; box->lo = lo; box->hi = hi; box->ylo = ylo; box->yhi = yhi;
    return 0;
}

/* ------------------------------------------------------------------ scan */

typedef struct {
    Buf runs; /* Interval[] */
    Buf off;  /* int64 [n + 1]: frame i owns runs[off[i]:off[i+1]] */
    Buf box;  /* Box [n] */
    int64_t n;
} Frames;

static void frames_free(Frames *f) {
    buf_free(&f->runs);
    buf_free(&f->off);
    buf_free(&f->box);
}

/* The interval buffer of the last freed scan, reused by the next one: a chunk's intervals are tens of MB,
 * and fresh pages cost a page fault each (~15% of a scan). `release()` frees it. */
static Buf spare_runs;

static void capsule_free(PyObject *cap) {
    Frames *f = PyCapsule_GetPointer(cap, CAPSULE_NAME);
    if (f) {
        if (spare_runs.data == NULL || f->runs.cap > spare_runs.cap) {
            buf_free(&spare_runs);
            spare_runs = f->runs;
            f->runs.data = NULL;
        }
        frames_free(f);
        PyMem_RawFree(f);
    }
}

PyDoc_STRVAR(release_doc, "release() -> None: free the interval buffer kept for the next scan.");

static PyObject *release(PyObject *self, PyObject *unused) {
    buf_free(&spare_runs);
    Py_RETURN_NONE;
}

static PyObject *counts_key;

/* Borrowed pointer to the counts of one frame; NULL (no error set) if it is not a dict with str/bytes counts. */
static const unsigned char *frame_counts(PyObject *seg, Py_ssize_t *n) {
    if (!PyDict_Check(seg)) return NULL;
    PyObject *c = PyDict_GetItemWithError(seg, counts_key);
    if (c == NULL) return NULL;
    if (PyUnicode_Check(c)) {
        const char *s = PyUnicode_AsUTF8AndSize(c, n); /* ASCII: the string's own data, no copy */
        if (s == NULL) PyErr_Clear();                     /* lone surrogates: not valid counts */
        return (const unsigned char *)s;
    }
    if (PyBytes_Check(c)) {
        *n = PyBytes_GET_SIZE(c);
        return (const unsigned char *)PyBytes_AS_STRING(c);
    }
    return NULL;
}

PyDoc_STRVAR(scan_doc,
"scan(tracks, heights, widths) -> (frames, track, t, area, bad)\n\n"
"tracks: list of per-frame lists (None or {'counts': str | bytes, ...}); heights / widths: int64 [n] per track.\n"
"Every non-None frame is parsed once. Returns an opaque capsule for intersect(), then bytes holding\n"
"int32 track [F], int32 t [F], int64 area [F] of the F valid frames, and int64 [B, 2] (track, t) of the B\n"
"frames that are not valid compressed RLE of height*width pixels (bad chars, a value running past the end,\n"
"a negative run, runs not adding up to the frame size).");

static PyObject *scan(PyObject *self, PyObject *args) {
    PyObject *tracks, *hobj, *wobj;
    if (!PyArg_ParseTuple(args, "O!OO", &PyList_Type, &tracks, &hobj, &wobj)) return NULL;
    Py_buffer hv, wv;
    if (get_buf(hobj, &hv, 8, I64, 0, "heights")) return NULL;
    if (get_buf(wobj, &wv, 8, I64, 0, "widths")) {
        PyBuffer_Release(&hv);
        return NULL;
    }
    Py_ssize_t nt = PyList_GET_SIZE(tracks);
    const int64_t *hs = hv.buf, *ws = wv.buf;
    Frames *f = PyMem_RawCalloc(1, sizeof(Frames));
    Buf tr = {0}, tt = {0}, ar = {0}, bad = {0};
    PyObject *cap = NULL, *out = NULL;
    if (!f) {
        PyErr_NoMemory();
        goto done;
    }
    if (hv.len / 8 != nt || wv.len / 8 != nt) {
        PyErr_Format(PyExc_ValueError, "heights/widths must have one entry per track (%zd)", nt);
        goto done;
    }
    f->runs = spare_runs;
    f->runs.len = 0;
    spare_runs.data = NULL;
    spare_runs.cap = 0;
    int64_t zero = 0;
    if (buf_put(&f->off, &zero, 8)) goto done;
    for (Py_ssize_t i = 0; i < nt; i++) {
        PyObject *segs = PyList_GET_ITEM(tracks, i);
        if (!PyList_Check(segs)) {
            PyErr_Format(PyExc_TypeError, "tracks[%zd] is not a list", i);
            goto done;
        }
        int64_t h = hs[i], pixels = hs[i] * ws[i];
        if (h <= 0 || ws[i] <= 0 || pixels > (int64_t)UINT32_MAX) {
            PyErr_Format(PyExc_ValueError, "tracks[%zd]: frame size %lldx%lld not supported", i, (long long)h,
                         (long long)ws[i]);
            goto done;
        }
        Py_ssize_t len = PyList_GET_SIZE(segs);
        for (Py_ssize_t t = 0; t < len; t++) {
            PyObject *seg = PyList_GET_ITEM(segs, t);
            if (seg == Py_None) continue;
            Py_ssize_t n = 0;
            const unsigned char *s = frame_counts(seg, &n);
            if (s == NULL && PyErr_Occurred()) goto done;
            int64_t area = 0;
            Box box;
            int rc = s ? parse_counts(s, n, h, pixels, &f->runs, &area, &box) : 1;
            if (rc < 0) goto done;
            int32_t i32 = (int32_t)i, t32 = (int32_t)t;
            if (rc) {
                int64_t pair[2] = {i, t};
                if (buf_put(&bad, pair, sizeof pair)) goto done;
                continue;
            }
            int64_t end = (int64_t)(f->runs.len / sizeof(Interval));
            if (buf_put(&tr, &i32, 4) || buf_put(&tt, &t32, 4) || buf_put(&ar, &area, 8) ||
                buf_put(&f->off, &end, 8) || buf_put(&f->box, &box, sizeof box))
                goto done;
            f->n++;
        }
    }
    cap = PyCapsule_New(f, CAPSULE_NAME, capsule_free);
    if (!cap) goto done;
    f = NULL; /* owned by the capsule now */
    out = Py_BuildValue("(ONNNN)", cap, buf_bytes(&tr), buf_bytes(&tt), buf_bytes(&ar), buf_bytes(&bad));
done:
    if (f) {
        frames_free(f);
        PyMem_RawFree(f);
    }
    Py_XDECREF(cap);
    buf_free(&tr);
    buf_free(&tt);
    buf_free(&ar);
    buf_free(&bad);
    PyBuffer_Release(&hv);
    PyBuffer_Release(&wv);
    return out;
}

/* ------------------------------------------------------------------ intersect */

/* First interval of v[0:n] whose end is past `pos` (all earlier ones end at or before it). */
static int64_t first_ending_after(const Interval *v, int64_t n, int64_t pos) {
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        int64_t mid = (lo + hi) / 2;
        if ((int64_t)v[mid].end <= pos) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* First interval of v[0:n] that starts at or after `pos`. */
static int64_t first_starting_at(const Interval *v, int64_t n, int64_t pos) {
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        int64_t mid = (lo + hi) / 2;
        if ((int64_t)v[mid].start < pos) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static int64_t intersection(const Frames *f, int64_t i, int64_t j, int64_t *walks) {
    const Box *bi = (const Box *)f->box.data + i, *bj = (const Box *)f->box.data + j;
    if (bi->lo >= bj->hi || bj->lo >= bi->hi || bi->ylo > bj->yhi || bj->ylo > bi->yhi) return 0;
    const int64_t *off = (const int64_t *)f->off.data;
    const Interval *a = (const Interval *)f->runs.data + off[i], *b = (const Interval *)f->runs.data + off[j];
    int64_t na = off[i + 1] - off[i], nb = off[j + 1] - off[j];
    /* only the intervals inside the other mask's extent can overlap it */
    int64_t ia = first_ending_after(a, na, bj->lo), ib = first_ending_after(b, nb, bi->lo);
    na = first_starting_at(a, na, bj->hi);
    nb = first_starting_at(b, nb, bi->hi);
    int64_t sum = 0;
    (*walks)++;
    /* merge; the branch is well predicted: similar masks alternate between the two lists column by column */
    while (ia < na && ib < nb) {
        uint32_t lo = a[ia].start > b[ib].start ? a[ia].start : b[ib].start;
        uint32_t hi = a[ia].end < b[ib].end ? a[ia].end : b[ib].end;
        if (hi > lo) sum += hi - lo;
        if (a[ia].end < b[ib].end) ia++;
        else ib++;
    }
    return sum;
}

PyDoc_STRVAR(intersect_doc,
"intersect(frames, a_frame, a_bucket, a_slot, b_frame, b_bucket, b_slot, out) -> walks\n\n"
"For every pair (i, j) with a_bucket[i] == b_bucket[j] (both int64 sorted ascending): out[a_slot[i] +\n"
"b_slot[j]] += |frame a_frame[i] ∩ frame b_frame[j]| (out: writable int64). Returns how many pairs passed\n"
"the box prefilter and were merged.");

static PyObject *intersect(PyObject *self, PyObject *args) {
    PyObject *cap, *o[7];
    if (!PyArg_ParseTuple(args, "OOOOOOOO", &cap, &o[0], &o[1], &o[2], &o[3], &o[4], &o[5], &o[6])) return NULL;
    Frames *f = PyCapsule_GetPointer(cap, CAPSULE_NAME);
    if (!f) return NULL;
    Py_buffer v[7];
    int got = 0;
    PyObject *ret = NULL;
    for (; got < 7; got++) {
        static const char *names[7] = {"a_frame", "a_bucket", "a_slot", "b_frame", "b_bucket", "b_slot", "out"};
        if (get_buf(o[got], &v[got], 8, I64, got == 6, names[got])) goto done;
    }
    int64_t na = v[0].len / 8, nb = v[3].len / 8, nout = v[6].len / 8;
    if (v[1].len / 8 != na || v[2].len / 8 != na || v[4].len / 8 != nb || v[5].len / 8 != nb) {
        PyErr_SetString(PyExc_ValueError, "a_* and b_* arrays must have matching lengths");
        goto done;
    }
    const int64_t *af = v[0].buf, *ab = v[1].buf, *as = v[2].buf, *bf = v[3].buf, *bb = v[4].buf, *bs = v[5].buf;
    int64_t *out = v[6].buf, walks = 0;
    for (int64_t i = 0; i < na; i++)
        if (af[i] < 0 || af[i] >= f->n || (i && ab[i] < ab[i - 1])) {
            PyErr_Format(PyExc_ValueError, "a_frame[%lld] out of range or a_bucket not sorted", (long long)i);
            goto done;
        }
    for (int64_t j = 0; j < nb; j++)
        if (bf[j] < 0 || bf[j] >= f->n || (j && bb[j] < bb[j - 1])) {
            PyErr_Format(PyExc_ValueError, "b_frame[%lld] out of range or b_bucket not sorted", (long long)j);
            goto done;
        }
    int64_t i = 0, j = 0;
    while (i < na && j < nb) {
        if (ab[i] < bb[j]) {
            i++;
        } else if (ab[i] > bb[j]) {
            j++;
        } else {
            int64_t i1 = i, j1 = j;
            while (i1 < na && ab[i1] == ab[i]) i1++;
            while (j1 < nb && bb[j1] == bb[j]) j1++;
            for (int64_t ii = i; ii < i1; ii++)
                for (int64_t jj = j; jj < j1; jj++) {
                    int64_t slot = as[ii] + bs[jj];
                    if (slot < 0 || slot >= nout) {
                        PyErr_Format(PyExc_ValueError, "slot %lld outside out[%lld]", (long long)slot,
                                     (long long)nout);
                        goto done;
                    }
                    out[slot] += intersection(f, af[ii], bf[jj], &walks);
                }
            i = i1;
            j = j1;
        }
    }
    ret = PyLong_FromLongLong(walks);
done:
    while (got-- > 0) PyBuffer_Release(&v[got]);
    return ret;
}

/* ------------------------------------------------------------------ greedy matching */

PyDoc_STRVAR(greedy_doc,
"greedy(iou, groups, gt_ignore, gt_crowd, dt_out, thresholds, matched, ignored, num_areas)\n\n"
"groups: int64 [NG, 5] rows (D, G, pair_base, d_row, g_start): group n has predictions d_row..d_row+D-1 in\n"
"score order and GTs g_start..g_start+G-1 in pool order; iou[pair_base + d*G + g] (float64).\n"
"gt_ignore: uint8 [Gtot, A]; gt_crowd: uint8 [Gtot]; dt_out: uint8 [N, A] (own area out of range);\n"
"thresholds: float64 [T]. Fills matched / ignored: writable uint8 [N, A, T].\n"
"Official rules: GTs stably sorted non-ignored first; a matched non-crowd GT is skipped; the scan stops at\n"
"the first ignored GT once a non-ignored match is held; a GT is taken if its IoU >= the best so far.");

static PyObject *greedy(PyObject *self, PyObject *args) {
    PyObject *o[8];
    Py_ssize_t na;
    if (!PyArg_ParseTuple(args, "OOOOOOOOn", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5], &o[6], &o[7], &na))
        return NULL;
    static const char *names[8] = {"iou", "groups", "gt_ignore", "gt_crowd", "dt_out", "thresholds", "matched",
                                   "ignored"};
    static const Py_ssize_t sizes[8] = {8, 8, 1, 1, 1, 8, 1, 1};
    static const char *kinds[8] = {F64, I64, U8, U8, U8, F64, U8, U8};
    Py_buffer v[8];
    int got = 0;
    PyObject *ret = NULL;
    int64_t *order = NULL;
    uint8_t *taken = NULL;
    for (; got < 8; got++)
        if (get_buf(o[got], &v[got], sizes[got], kinds[got], got >= 6, names[got])) goto done;
    const double *iou = v[0].buf, *thr = v[5].buf;
    const int64_t *grp = v[1].buf;
    const uint8_t *gig = v[2].buf, *crowd = v[3].buf, *dout = v[4].buf;
    uint8_t *matched = v[6].buf, *ignored = v[7].buf;
    int64_t ng = v[1].len / 40, ngt = v[3].len, np_ = v[0].len / 8, nt = v[5].len / 8;
    int64_t nd = na > 0 ? v[4].len / na : 0;
    if (na <= 0 || v[1].len % 40 || v[2].len != ngt * na || v[4].len != nd * na || v[6].len != nd * na * nt ||
        v[7].len != nd * na * nt) {
        PyErr_SetString(PyExc_ValueError, "greedy: inconsistent array sizes");
        goto done;
    }
    int64_t gmax = 0;
    for (int64_t n = 0; n < ng; n++) {
        const int64_t *g = grp + 5 * n;
        if (g[0] < 0 || g[1] < 0 || g[3] < 0 || g[4] < 0 || g[3] + g[0] > nd || g[4] + g[1] > ngt ||
            (g[0] && g[1] && (g[2] < 0 || g[2] + g[0] * g[1] > np_))) {
            PyErr_Format(PyExc_ValueError, "greedy: group %lld out of range", (long long)n);
            goto done;
        }
        if (g[1] > gmax) gmax = g[1];
    }
    order = PyMem_RawMalloc((size_t)(gmax + 1) * sizeof(int64_t));
    taken = PyMem_RawMalloc((size_t)(gmax + 1));
    if (!order || !taken) {
        PyErr_NoMemory();
        goto done;
    }
    memset(matched, 0, (size_t)(nd * na * nt));
    for (int64_t n = 0; n < ng; n++) {
        const int64_t D = grp[5 * n], G = grp[5 * n + 1], base = grp[5 * n + 2], d0 = grp[5 * n + 3],
                      g0 = grp[5 * n + 4];
        for (int64_t a = 0; a < na; a++) {
            int64_t k = 0;
            for (int pass = 0; pass < 2; pass++) /* stable: non-ignored first */
                for (int64_t g = 0; g < G; g++)
                    if (gig[(g0 + g) * na + a] == pass) order[k++] = g;
            for (int64_t ti = 0; ti < nt; ti++) {
                memset(taken, 0, (size_t)G);
                for (int64_t d = 0; d < D; d++) {
                    const double *row = iou + base + d * G;
                    double best = thr[ti];
                    int64_t m = -1;
                    for (int64_t oi = 0; oi < G; oi++) {
                        int64_t g = order[oi];
                        if (taken[g] && !crowd[g0 + g]) continue;
                        if (m > -1 && !gig[(g0 + m) * na + a] && gig[(g0 + g) * na + a]) break;
                        if (row[g] < best) continue;
                        best = row[g];
                        m = g;
                    }
                    int64_t cell = ((d0 + d) * na + a) * nt + ti;
                    if (m > -1) {
                        taken[m] = 1;
                        matched[cell] = 1;
                        ignored[cell] = gig[(g0 + m) * na + a] != 0;
                    } else {
                        ignored[cell] = dout[(d0 + d) * na + a] != 0;
                    }
                }
            }
        }
    }
    ret = Py_NewRef(Py_None);
done:
    PyMem_RawFree(order);
    PyMem_RawFree(taken);
    while (got-- > 0) PyBuffer_Release(&v[got]);
    return ret;
}

/* ------------------------------------------------------------------ input check */

static PyObject *size_key;

PyDoc_STRVAR(frames_ok_doc,
"frames_ok(segs, height, width) -> bool\n\n"
"True if every item of the list is None or an exact dict whose 'size' is the list [height, width] (exact ints)\n"
"and whose 'counts' is an exact str. False means 'look closer' (the caller's Python check decides), never\n"
"'invalid'.");

static PyObject *frames_ok(PyObject *self, PyObject *args) {
    PyObject *segs;
    long long h, w;
    if (!PyArg_ParseTuple(args, "O!LL", &PyList_Type, &segs, &h, &w)) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(segs);
    for (Py_ssize_t t = 0; t < n; t++) {
        PyObject *seg = PyList_GET_ITEM(segs, t);
        if (seg == Py_None) continue;
        if (!PyDict_CheckExact(seg)) Py_RETURN_FALSE;
        PyObject *size = PyDict_GetItemWithError(seg, size_key);
        PyObject *counts = size ? PyDict_GetItemWithError(seg, counts_key) : NULL;
        if (!counts) {
            if (PyErr_Occurred()) return NULL;
            Py_RETURN_FALSE;
        }
        if (!PyUnicode_CheckExact(counts) || !PyList_CheckExact(size) || PyList_GET_SIZE(size) != 2)
            Py_RETURN_FALSE;
        PyObject *sh = PyList_GET_ITEM(size, 0), *sw = PyList_GET_ITEM(size, 1);
        if (!PyLong_CheckExact(sh) || !PyLong_CheckExact(sw)) Py_RETURN_FALSE;
        int of1 = 0, of2 = 0;
        long long vh = PyLong_AsLongLongAndOverflow(sh, &of1), vw = PyLong_AsLongLongAndOverflow(sw, &of2);
        if (of1 || of2 || vh != h || vw != w) Py_RETURN_FALSE;
    }
    Py_RETURN_TRUE;
}

/* ------------------------------------------------------------------ module */

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS, scan_doc},
    {"intersect", intersect, METH_VARARGS, intersect_doc},
    {"greedy", greedy, METH_VARARGS, greedy_doc},
    {"frames_ok", frames_ok, METH_VARARGS, frames_ok_doc},
    {"release", release, METH_NOARGS, release_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_rle_kernel",
                                    "Compressed-RLE scan / intersection and greedy matching for the video mask AP.",
                                    -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__rle_kernel(void) {
    counts_key = PyUnicode_InternFromString("counts");
    size_key = PyUnicode_InternFromString("size");
    if (!counts_key || !size_key) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m && PyModule_AddIntConstant(m, "ABI", KERNEL_ABI) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

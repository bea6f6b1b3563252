/* parse_results / flat_item: a results file read straight into flat tables (see kernel.h).
 *
 * The common shape of a results file only: a JSON array of objects with exactly the keys video_id, category_id
 * (integers), score (a number) and segmentations (an array of null or {"size": [H, W], "counts": "..."} whose
 * sizes agree inside one result, counts made of valid RLE chars). Anything else -- other keys, duplicate keys,
 * escapes other than \\ in counts, an empty list, invalid JSON -- makes the parser decline (return None), and the
 * caller parses the file with the general JSON reader, which accepts or rejects it as before. So the parser never
 * accepts a file the general path would reject, and never reads one differently.
 *
 * Counts strings are unescaped in place (an unescaped string is never longer than its JSON text), so the
 * buffer must be writable and is not valid JSON afterwards: a caller that falls back reads the file again.
 * The scan runs without the GIL (two files can be parsed at once); the scores are converted afterwards with
 * Python's own float parser (the one `json` uses; orjson's is correctly rounded as well: the same double). */
#include "kernel.h"

#define MAX_INT_DIGITS 18 /* larger integers decline: the general path keeps them exact */
#define MAX_NUMBER_CHARS 64

typedef struct {
    unsigned char *p, *end;
} Cur;

enum { OK = 0, DECLINE = 1, NOMEM = 2 };

static inline void skip_ws(Cur *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\n' || *c->p == '\r' || *c->p == '\t')) c->p++;
}

static inline int expect(Cur *c, unsigned char ch) {
    skip_ws(c);
    if (c->p >= c->end || *c->p != ch) return DECLINE;
    c->p++;
    return OK;
}

static inline int is_digit(unsigned char ch) { return ch >= '0' && ch <= '9'; }

/* A JSON integer (no fraction, no exponent) of at most MAX_INT_DIGITS digits. */
static int parse_int(Cur *c, int64_t *out) {
    skip_ws(c);
    int neg = 0;
    if (c->p < c->end && *c->p == '-') {
        neg = 1;
        c->p++;
    }
    const unsigned char *start = c->p;
    int64_t v = 0;
    while (c->p < c->end && is_digit(*c->p)) v = v * 10 + (*c->p++ - '0');
    Py_ssize_t nd = c->p - start;
    if (nd == 0 || nd > MAX_INT_DIGITS || (nd > 1 && *start == '0')) return DECLINE;
    if (c->p < c->end && (*c->p == '.' || *c->p == 'e' || *c->p == 'E')) return DECLINE;
    *out = neg ? -v : v;
    return OK;
}

/* A JSON number: its text span (converted later, with the GIL). */
static int parse_number(Cur *c, int64_t *off, int64_t *len, const unsigned char *base) {
    skip_ws(c);
    const unsigned char *start = c->p;
    if (c->p < c->end && *c->p == '-') c->p++;
    const unsigned char *d = c->p;
    while (c->p < c->end && is_digit(*c->p)) c->p++;
    Py_ssize_t nd = c->p - d;
    if (nd == 0 || (nd > 1 && *d == '0')) return DECLINE;
    int is_int = 1;
    if (c->p < c->end && *c->p == '.') {
        is_int = 0;
        c->p++;
        const unsigned char *f = c->p;
        while (c->p < c->end && is_digit(*c->p)) c->p++;
        if (c->p == f) return DECLINE;
    }
    if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
        is_int = 0;
        c->p++;
        if (c->p < c->end && (*c->p == '+' || *c->p == '-')) c->p++;
        const unsigned char *e = c->p;
        while (c->p < c->end && is_digit(*c->p)) c->p++;
        if (c->p == e) return DECLINE;
    }
    if (is_int && nd > MAX_INT_DIGITS) return DECLINE;
    if (c->p - start >= MAX_NUMBER_CHARS) return DECLINE;
    *off = start - base;
    *len = c->p - start;
    return OK;
}

/* An object key without escapes or non-ASCII bytes: its span; then the ':' after it. */
static int parse_key(Cur *c, const unsigned char **key, Py_ssize_t *n) {
    if (expect(c, '"')) return DECLINE;
    const unsigned char *s = c->p;
    while (c->p < c->end && *c->p != '"') {
        if (*c->p == '\\' || *c->p < 0x20 || *c->p >= 0x80) return DECLINE;
        c->p++;
    }
    if (c->p >= c->end) return DECLINE;
    *key = s;
    *n = c->p - s;
    c->p++;
    return expect(c, ':');
}

#define KEY_IS(k, n, lit) ((n) == (Py_ssize_t)sizeof(lit) - 1 && memcmp((k), (lit), sizeof(lit) - 1) == 0)

/* 8 bytes that are all RLE chars other than '\\' (the common case, tested word-wise): every byte below 0x80,
 * byte + 16 in [0x40, 0x80) (so byte in ['0', 'o'], no carry between bytes), and no byte equal to '\\'. */
static inline int plain8(uint64_t x) {
    const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
    uint64_t bs = x ^ (ones * '\\');
    return !(x & high) && ((x + ones * 16) & (ones * 0xC0)) == ones * 0x40 && !((bs - ones) & ~bs & high);
}

/* A counts string: RLE chars ('0' + 0..63) where '\\' is written "\\\\"; unescaped in place. */
static int parse_counts_string(Cur *c, int64_t *off, int64_t *len, const unsigned char *base) {
    if (expect(c, '"')) return DECLINE;
    unsigned char *start = c->p, *r = c->p, *w = c->p, *end = c->end;
    for (;;) {
        while (end - r >= 8) {
            uint64_t x;
            memcpy(&x, r, 8);
            if (!plain8(x)) break;
            memcpy(w, &x, 8); /* loaded first: safe when w and r overlap (w <= r) */
            r += 8;
            w += 8;
        }
        if (r >= end) return DECLINE;
        unsigned ch = *r;
        if ((unsigned)(ch - 48u) < 64u && ch != '\\') {
            *w++ = (unsigned char)ch;
            r++;
        } else if (ch == '\\') {
            if (r + 1 >= end || r[1] != '\\') return DECLINE;
            *w++ = '\\';
            r += 2;
        } else if (ch == '"') {
            break;
        } else {
            return DECLINE;
        }
    }
    c->p = r + 1;
    *off = start - base;
    *len = w - start;
    return OK;
}

typedef struct {
    Buf vid, cat, score_span, seg_start, h, w; /* per result: int64, int64, int64 [2], int64 [n + 1], int64, int64 */
    Buf frame_off, frame_len;                   /* per frame: int64 offset in the buffer, int64 length (-1: null) */
    int64_t n;
} Tables;

/* growth without setting a Python error (called without the GIL) */
static int put(Buf *b, const void *src, size_t n) { return buf_append(b, src, n) ? NOMEM : OK; }

static void tables_free(Tables *t) {
    Buf *all[] = {&t->vid, &t->cat, &t->score_span, &t->seg_start, &t->h, &t->w, &t->frame_off, &t->frame_len};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) buf_free(all[i]);
}

/* {"size": [H, W], "counts": "..."} in either key order, nothing else. */
static int parse_frame(Cur *c, const unsigned char *base, int64_t *h, int64_t *w, int64_t *off, int64_t *len) {
    int have_size = 0, have_counts = 0, rc;
    if (expect(c, '{')) return DECLINE;
    for (int k = 0; k < 2; k++) {
        if (k && expect(c, ',')) return DECLINE;
        const unsigned char *key;
        Py_ssize_t n;
        if (parse_key(c, &key, &n)) return DECLINE;
        if (KEY_IS(key, n, "size") && !have_size) {
            have_size = 1;
            if (expect(c, '[') || parse_int(c, h) || expect(c, ',') || parse_int(c, w) || expect(c, ']'))
                return DECLINE;
        } else if (KEY_IS(key, n, "counts") && !have_counts) {
            have_counts = 1;
            if ((rc = parse_counts_string(c, off, len, base))) return rc;
        } else {
            return DECLINE;
        }
    }
    return expect(c, '}');
}

static int literal(Cur *c, const char *lit, size_t n) {
    skip_ws(c);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, lit, n) != 0) return DECLINE;
    c->p += n;
    return OK;
}

/* [null | frame, ...]; every frame of one result has the same size (*h, *w; -1, -1 when all are null). */
static int parse_segmentations(Cur *c, const unsigned char *base, Tables *t, int64_t *h, int64_t *w) {
    int rc;
    *h = *w = -1;
    if (expect(c, '[')) return DECLINE;
    skip_ws(c);
    if (c->p < c->end && *c->p == ']') {
        c->p++;
        return OK;
    }
    for (;;) {
        int64_t off = 0, len = -1;
        skip_ws(c);
        if (c->p < c->end && *c->p == 'n') {
            if (literal(c, "null", 4)) return DECLINE;
        } else {
            int64_t fh, fw;
            if ((rc = parse_frame(c, base, &fh, &fw, &off, &len))) return rc;
            if (*h < 0) {
                *h = fh;
                *w = fw;
            } else if (fh != *h || fw != *w) {
                return DECLINE;
            }
            if (fh < 0 || fw < 0) return DECLINE;
        }
        if ((rc = put(&t->frame_off, &off, 8)) || (rc = put(&t->frame_len, &len, 8))) return rc;
        skip_ws(c);
        if (c->p >= c->end) return DECLINE;
        if (*c->p == ']') {
            c->p++;
            return OK;
        }
        if (*c->p++ != ',') return DECLINE;
    }
}

static int parse_result(Cur *c, const unsigned char *base, Tables *t) {
    int seen = 0, rc;
    int64_t vid = 0, cat = 0, span[2] = {0, 0}, h = -1, w = -1;
    if (expect(c, '{')) return DECLINE;
    for (int k = 0; k < 4; k++) {
        if (k && expect(c, ',')) return DECLINE;
        const unsigned char *key;
        Py_ssize_t n;
        if (parse_key(c, &key, &n)) return DECLINE;
        int bit;
        if (KEY_IS(key, n, "video_id")) {
            bit = 1;
            rc = parse_int(c, &vid);
        } else if (KEY_IS(key, n, "category_id")) {
            bit = 2;
            rc = parse_int(c, &cat);
        } else if (KEY_IS(key, n, "score")) {
            bit = 4;
            rc = parse_number(c, &span[0], &span[1], base);
        } else if (KEY_IS(key, n, "segmentations")) {
            bit = 8;
            rc = parse_segmentations(c, base, t, &h, &w);
        } else {
            return DECLINE;
        }
        if (seen & bit) return DECLINE;
        seen |= bit;
        if (rc) return rc;
    }
    if (expect(c, '}')) return DECLINE;
    int64_t frames = (int64_t)(t->frame_off.len / 8);
    if ((rc = put(&t->vid, &vid, 8)) || (rc = put(&t->cat, &cat, 8)) || (rc = put(&t->score_span, span, 16)) ||
        (rc = put(&t->seg_start, &frames, 8)) || (rc = put(&t->h, &h, 8)) || (rc = put(&t->w, &w, 8)))
        return rc;
    t->n++;
    return OK;
}

static int parse_all(unsigned char *data, Py_ssize_t size, Tables *t) {
    Cur c = {data, data + size};
    int rc;
    int64_t zero = 0;
    if ((rc = put(&t->seg_start, &zero, 8))) return rc;
    if (expect(&c, '[')) return DECLINE;
    skip_ws(&c);
    if (c.p < c.end && *c.p == ']') return DECLINE; /* empty: the general path (and its warning) */
    for (;;) {
        if ((rc = parse_result(&c, data, t))) return rc;
        skip_ws(&c);
        if (c.p >= c.end) return DECLINE;
        if (*c.p == ']') {
            c.p++;
            break;
        }
        if (*c.p++ != ',') return DECLINE;
    }
    skip_ws(&c);
    return c.p == c.end ? OK : DECLINE;
}

typedef struct {
    Py_buffer view; /* the caller's writable buffer, held (and so kept alive, unresized) while the capsule lives */
    Tables t;
} Flat;

static void flat_capsule_free(PyObject *cap) {
    Flat *f = PyCapsule_GetPointer(cap, FLAT_CAPSULE_NAME);
    if (f) {
        PyBuffer_Release(&f->view);
        tables_free(&f->t);
        PyMem_RawFree(f);
    }
}

int flat_view(PyObject *cap, FlatView *out) {
    Flat *f = PyCapsule_GetPointer(cap, FLAT_CAPSULE_NAME);
    if (!f) return -1;
    out->data = f->view.buf;
    out->n = f->t.n;
    out->seg_start = (const int64_t *)f->t.seg_start.data;
    out->frame_off = (const int64_t *)f->t.frame_off.data;
    out->frame_len = (const int64_t *)f->t.frame_len.data;
    return 0;
}

const char parse_results_doc[] =
"parse_results(buffer) -> (flat, video_id, category_id, score, seg_start, height, width) or None\n\n"
"buffer: the writable bytes of a results file (bytearray); counts are unescaped in place, so the buffer no\n"
"longer holds the file's text afterwards, even when the parser declines. None: the file is not of the common\n"
"shape (see results.c), parse it with the general reader. Otherwise bytes of int64 video_id [n], int64\n"
"category_id [n], float64 score [n], int64 seg_start [n + 1] (result i owns frames seg_start[i]:seg_start[i+1],\n"
"its list length), int64 height / width [n] (the size of its frames, -1 when all are null), and an opaque\n"
"capsule for scan() and flat_item().";

PyObject *parse_results(PyObject *self, PyObject *args) {
    PyObject *obj;
    if (!PyArg_ParseTuple(args, "O", &obj)) return NULL;
    Flat *f = PyMem_RawCalloc(1, sizeof(Flat));
    if (!f) return PyErr_NoMemory();
    if (PyObject_GetBuffer(obj, &f->view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) {
        PyMem_RawFree(f);
        return NULL;
    }
    int rc;
    Py_BEGIN_ALLOW_THREADS rc = parse_all(f->view.buf, f->view.len, &f->t);
    Py_END_ALLOW_THREADS
    PyObject *cap = NULL, *out = NULL, *scores = NULL;
    if (rc == NOMEM) {
        PyErr_NoMemory();
        goto fail;
    }
    if (rc == DECLINE) {
        PyBuffer_Release(&f->view);
        tables_free(&f->t);
        PyMem_RawFree(f);
        Py_RETURN_NONE;
    }
    int64_t n = f->t.n;
    scores = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(n * 8));
    if (!scores) goto fail;
    double *sc = (double *)PyBytes_AS_STRING(scores);
    const int64_t *spans = (const int64_t *)f->t.score_span.data;
    const char *base = f->view.buf;
    for (int64_t i = 0; i < n; i++) {
        char text[MAX_NUMBER_CHARS];
        memcpy(text, base + spans[2 * i], (size_t)spans[2 * i + 1]);
        text[spans[2 * i + 1]] = '\0';
        char *endp;
        double v = PyOS_string_to_double(text, &endp, NULL); /* overflow -> +-inf, no error */
        if (v == -1.0 && PyErr_Occurred()) goto fail;
        if (*endp != '\0' || !isfinite(v)) { /* not finite: the general path reports it */
            Py_DECREF(scores);
            PyBuffer_Release(&f->view);
            tables_free(&f->t);
            PyMem_RawFree(f);
            Py_RETURN_NONE;
        }
        sc[i] = v;
    }
    cap = PyCapsule_New(f, FLAT_CAPSULE_NAME, flat_capsule_free);
    if (!cap) goto fail;
    Tables *t = &f->t;
    f = NULL; /* owned by the capsule */
    out = Py_BuildValue("(ONNONNN)", cap, buf_bytes(&t->vid), buf_bytes(&t->cat), scores, buf_bytes(&t->seg_start),
                        buf_bytes(&t->h), buf_bytes(&t->w));
    Py_DECREF(cap);
    Py_DECREF(scores);
    return out;
fail:
    Py_XDECREF(scores);
    if (f) {
        PyBuffer_Release(&f->view);
        tables_free(&f->t);
        PyMem_RawFree(f);
    }
    return NULL;
}

const char flat_item_doc[] =
"flat_item(flat, i) -> list\n\n"
"The 'segmentations' of result i as the general reader gives them: None or {'size': [h, w], 'counts': str}.";

PyObject *flat_item(PyObject *self, PyObject *args) {
    PyObject *cap;
    Py_ssize_t i;
    if (!PyArg_ParseTuple(args, "On", &cap, &i)) return NULL;
    Flat *f = PyCapsule_GetPointer(cap, FLAT_CAPSULE_NAME);
    if (!f) return NULL;
    if (i < 0 || i >= f->t.n) {
        PyErr_SetString(PyExc_IndexError, "result index out of range");
        return NULL;
    }
    const int64_t *start = (const int64_t *)f->t.seg_start.data;
    const int64_t *off = (const int64_t *)f->t.frame_off.data, *len = (const int64_t *)f->t.frame_len.data;
    int64_t h = ((const int64_t *)f->t.h.data)[i], w = ((const int64_t *)f->t.w.data)[i];
    PyObject *segs = PyList_New((Py_ssize_t)(start[i + 1] - start[i]));
    if (!segs) return NULL;
    for (int64_t k = start[i]; k < start[i + 1]; k++) {
        PyObject *item;
        if (len[k] < 0) {
            item = Py_NewRef(Py_None);
        } else {
            item = Py_BuildValue("{s[LL]sN}", "size", (long long)h, (long long)w, "counts",
                                 PyUnicode_FromStringAndSize((const char *)f->view.buf + off[k], (Py_ssize_t)len[k]));
            if (!item) {
                Py_DECREF(segs);
                return NULL;
            }
        }
        PyList_SET_ITEM(segs, (Py_ssize_t)(k - start[i]), item);
    }
    return segs;
}

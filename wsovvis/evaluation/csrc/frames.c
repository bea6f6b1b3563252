/* scan / intersect / frames_ok / release (see kernel.h). */
#include "kernel.h"

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

/* The interval buffers of the last freed scans, reused by the next ones: a chunk's intervals are tens of MB,
 * and touching fresh pages costs a page fault each (a third of a scan's time when measured). Two, for two scans
 * running at once in threads; only touched with the GIL held. `release()` frees them. */
#define SPARES 2
static Buf spare_runs[SPARES];

static void capsule_free(PyObject *cap) {
    Frames *f = PyCapsule_GetPointer(cap, CAPSULE_NAME);
    if (f) {
        int k = 0; /* an empty slot, else the smallest */
        for (int j = 1; j < SPARES; j++)
            if (spare_runs[k].data && (!spare_runs[j].data || spare_runs[j].cap < spare_runs[k].cap)) k = j;
        if (spare_runs[k].data == NULL || f->runs.cap > spare_runs[k].cap) {
            buf_free(&spare_runs[k]);
            spare_runs[k] = f->runs;
            f->runs.data = NULL;
        }
        frames_free(f);
        PyMem_RawFree(f);
    }
}

const char release_doc[] = "release() -> None: free the interval buffers kept for the next scans.";

PyObject *release(PyObject *self, PyObject *unused) {
    for (int k = 0; k < SPARES; k++) buf_free(&spare_runs[k]);
    Py_RETURN_NONE;
}

/* Borrowed pointer to the counts of one frame (*owner: the counts object); NULL (no error set) if it is not a
 * dict with str/bytes counts. */
static const unsigned char *frame_counts(PyObject *seg, Py_ssize_t *n, PyObject **owner) {
    if (!PyDict_Check(seg)) return NULL;
    PyObject *c = PyDict_GetItemWithError(seg, counts_key);
    if (c == NULL) return NULL;
    *owner = c;
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

/* One present frame to parse: its counts (NULL: not a dict with str/bytes counts, a bad frame), track, index. */
typedef struct {
    const unsigned char *s;
    Py_ssize_t n;
    PyObject *owner; /* a reference to the counts object, held while the frames are parsed without the GIL */
    int32_t i, t;
} Item;

const char scan_doc[] =
"scan(tracks, heights, widths[, need[, flat]]) -> (frames, track, t, area, bad)\n\n"
"tracks: list of per-frame lists (None or {'counts': str | bytes, ...}), or ints k: the frames of result k of\n"
"flat (a parse_results capsule); heights / widths: int64 [n] per track;\n"
"need: uint8 [n] (default all 1): 0 = the track's frames are never intersected (validity and area only).\n"
"Every non-None frame is parsed once. Returns an opaque capsule for intersect(), then bytes holding\n"
"int32 track [F], int32 t [F], int64 area [F] of the F valid frames, and int64 [B, 2] (track, t) of the B\n"
"frames that are not valid compressed RLE of height*width pixels (bad chars, a value running past the end,\n"
"a negative run, runs not adding up to the frame size).";

/* Parse one present frame of track i into f (or record it in bad); -1 when out of memory (no error set). */
static int scan_frame(Frames *f, const unsigned char *s, Py_ssize_t n, int need, Py_ssize_t i, Py_ssize_t t,
                      int64_t h, int64_t pixels, Buf *tr, Buf *tt, Buf *ar, Buf *bad) {
    int64_t area = 0;
    Box box;
    int rc = 1;
    if (s && need) {
        rc = parse_counts(s, n, h, pixels, &f->runs, &area, &box);
    } else if (s) {
        rc = parse_area(s, n, pixels, &area);
        box = (Box){0, 0, h, -1}; /* empty: the box test rejects every pair */
    }
    if (rc < 0) return -1;
    int32_t i32 = (int32_t)i, t32 = (int32_t)t;
    if (rc) {
        int64_t pair[2] = {i, t};
        return buf_append(bad, pair, sizeof pair);
    }
    int64_t end = (int64_t)(f->runs.len / sizeof(Interval));
    if (buf_append(tr, &i32, 4) || buf_append(tt, &t32, 4) || buf_append(ar, &area, 8) ||
        buf_append(&f->off, &end, 8) || buf_append(&f->box, &box, sizeof box))
        return -1;
    f->n++;
    return 0;
}

PyObject *scan(PyObject *self, PyObject *args) {
    PyObject *tracks, *hobj, *wobj, *nobj = Py_None, *flat_obj = Py_None;
    if (!PyArg_ParseTuple(args, "O!OO|OO", &PyList_Type, &tracks, &hobj, &wobj, &nobj, &flat_obj)) return NULL;
    FlatView flat = {0};
    if (flat_obj != Py_None && flat_view(flat_obj, &flat) < 0) return NULL;
    Py_buffer hv, wv, nv = {0};
    if (get_buf(hobj, &hv, 8, I64, 0, "heights")) return NULL;
    if (get_buf(wobj, &wv, 8, I64, 0, "widths")) {
        PyBuffer_Release(&hv);
        return NULL;
    }
    if (nobj != Py_None && get_buf(nobj, &nv, 1, U8, 0, "need")) {
        PyBuffer_Release(&hv);
        PyBuffer_Release(&wv);
        return NULL;
    }
    const uint8_t *need = nobj != Py_None ? nv.buf : NULL;
    Py_ssize_t nt = PyList_GET_SIZE(tracks);
    const int64_t *hs = hv.buf, *ws = wv.buf;
    Frames *f = PyMem_RawCalloc(1, sizeof(Frames));
    Buf tr = {0}, tt = {0}, ar = {0}, bad = {0}, items = {0};
    PyObject *cap = NULL, *out = NULL;
    if (!f) {
        PyErr_NoMemory();
        goto done;
    }
    if (hv.len / 8 != nt || wv.len / 8 != nt || (need && nv.len != nt)) {
        PyErr_Format(PyExc_ValueError, "heights/widths/need must have one entry per track (%zd)", nt);
        goto done;
    }
    for (int k = 0; k < SPARES; k++) /* the largest spare */
        if (spare_runs[k].data && (!f->runs.data || spare_runs[k].cap > f->runs.cap)) {
            Buf tmp = f->runs;
            f->runs = spare_runs[k];
            spare_runs[k] = tmp;
        }
    f->runs.len = 0;
    int64_t zero = 0;
    if (buf_put(&f->off, &zero, 8)) goto done;
    /* 1. with the GIL: every present frame's counts (references held); 2. without it: parse them all */
    for (Py_ssize_t i = 0; i < nt; i++) {
        PyObject *segs = PyList_GET_ITEM(tracks, i);
        int64_t h = hs[i], pixels = hs[i] * ws[i];
        if (h <= 0 || ws[i] <= 0 || pixels > (int64_t)UINT32_MAX) {
            PyErr_Format(PyExc_ValueError, "tracks[%zd]: frame size %lldx%lld not supported", i, (long long)h,
                         (long long)ws[i]);
            goto done;
        }
        if (flat.data && PyLong_CheckExact(segs)) { /* result k of the flat tables */
            Py_ssize_t k = PyLong_AsSsize_t(segs);
            if (k < 0 || k >= flat.n) {
                if (!PyErr_Occurred()) PyErr_Format(PyExc_IndexError, "tracks[%zd]: no result %zd", i, k);
                goto done;
            }
            for (int64_t j = flat.seg_start[k]; j < flat.seg_start[k + 1]; j++) {
                if (flat.frame_len[j] < 0) continue;
                Item it = {flat.data + flat.frame_off[j], (Py_ssize_t)flat.frame_len[j], NULL, (int32_t)i,
                           (int32_t)(j - flat.seg_start[k])}; /* the capsule (an argument) keeps the data */
                if (buf_put(&items, &it, sizeof it)) goto done;
            }
            continue;
        }
        if (!PyList_Check(segs)) {
            PyErr_Format(PyExc_TypeError, "tracks[%zd] is not a list%s", i, flat.data ? " or a result index" : "");
            goto done;
        }
        Py_ssize_t len = PyList_GET_SIZE(segs);
        for (Py_ssize_t t = 0; t < len; t++) {
            PyObject *seg = PyList_GET_ITEM(segs, t);
            if (seg == Py_None) continue;
            Item it = {NULL, 0, NULL, (int32_t)i, (int32_t)t};
            it.s = frame_counts(seg, &it.n, &it.owner);
            if (it.s == NULL && PyErr_Occurred()) goto done;
            if (it.s == NULL) it.owner = NULL;
            Py_XINCREF(it.owner);
            if (buf_put(&items, &it, sizeof it)) {
                Py_XDECREF(it.owner);
                goto done;
            }
        }
    }
    {
        const Item *its = (const Item *)items.data;
        size_t ni = items.len / sizeof(Item);
        int nomem = 0;
        Py_BEGIN_ALLOW_THREADS for (size_t k = 0; k < ni && !nomem; k++) {
            int64_t h = hs[its[k].i];
            nomem = scan_frame(f, its[k].s, its[k].n, need == NULL || need[its[k].i], its[k].i, its[k].t, h,
                               h * ws[its[k].i], &tr, &tt, &ar, &bad) != 0;
        }
        Py_END_ALLOW_THREADS if (nomem) {
            PyErr_NoMemory();
            goto done;
        }
    }
    cap = PyCapsule_New(f, CAPSULE_NAME, capsule_free);
    if (!cap) goto done;
    f = NULL; /* owned by the capsule now */
    out = Py_BuildValue("(ONNNN)", cap, buf_bytes(&tr), buf_bytes(&tt), buf_bytes(&ar), buf_bytes(&bad));
done:
    for (size_t k = 0; k < items.len / sizeof(Item); k++) Py_XDECREF(((Item *)items.data)[k].owner);
    buf_free(&items);
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
    if (nobj != Py_None) PyBuffer_Release(&nv);
    return out;
}

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

const char intersect_doc[] =
"intersect(frames, a_frame, a_bucket, a_slot, b_frame, b_bucket, b_slot, out) -> walks\n\n"
"For every pair (i, j) with a_bucket[i] == b_bucket[j] (both int64 sorted ascending): out[a_slot[i] +\n"
"b_slot[j]] += |frame a_frame[i] ∩ frame b_frame[j]| (out: writable int64). Returns how many pairs passed\n"
"the box prefilter and were merged.";

PyObject *intersect(PyObject *self, PyObject *args) {
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
    int64_t i = 0, j = 0, bad_slot = 0;
    int bad = 0;
    /* without the GIL: two chunks' intersections can run at once (their out slots are disjoint) */
    Py_BEGIN_ALLOW_THREADS while (i < na && j < nb && !bad) {
        if (ab[i] < bb[j]) {
            i++;
        } else if (ab[i] > bb[j]) {
            j++;
        } else {
            int64_t i1 = i, j1 = j;
            while (i1 < na && ab[i1] == ab[i]) i1++;
            while (j1 < nb && bb[j1] == bb[j]) j1++;
            for (int64_t ii = i; ii < i1 && !bad; ii++)
                for (int64_t jj = j; jj < j1; jj++) {
                    int64_t slot = as[ii] + bs[jj];
                    if (slot < 0 || slot >= nout) { /* reported below, with the GIL */
                        bad = 1;
                        bad_slot = slot;
                        break;
                    }
                    out[slot] += intersection(f, af[ii], bf[jj], &walks);
                }
            i = i1;
            j = j1;
        }
    }
    Py_END_ALLOW_THREADS if (bad) {
        PyErr_Format(PyExc_ValueError, "slot %lld outside out[%lld]", (long long)bad_slot, (long long)nout);
        goto done;
    }
    ret = PyLong_FromLongLong(walks);
done:
    while (got-- > 0) PyBuffer_Release(&v[got]);
    return ret;
}

const char frames_ok_doc[] =
"frames_ok(segs, height, width) -> bool\n\n"
"True if every item of the list is None or an exact dict whose 'size' is the list [height, width] (exact ints)\n"
"and whose 'counts' is an exact str. False means 'look closer' (the caller's Python check decides), never\n"
"'invalid'.";

PyObject *frames_ok(PyObject *self, PyObject *args) {
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

/* Greedy prediction-to-GT matching of every group (the official evaluateVid rules; see matching.py). */
#include "kernel.h"

const char greedy_doc[] =
"greedy(iou, groups, gt_ignore, gt_crowd, dt_out, thresholds, matched, ignored, num_areas)\n\n"
"groups: int64 [NG, 5] rows (D, G, pair_base, d_row, g_start): group n has predictions d_row..d_row+D-1 in\n"
"score order and GTs g_start..g_start+G-1 in pool order; iou[pair_base + d*G + g] (float64).\n"
"gt_ignore: uint8 [Gtot, A]; gt_crowd: uint8 [Gtot]; dt_out: uint8 [N, A] (own area out of range);\n"
"thresholds: float64 [T]. Fills matched / ignored: writable uint8 [N, A, T].\n"
"Official rules: GTs stably sorted non-ignored first; a matched non-crowd GT is skipped; the scan stops at\n"
"the first ignored GT once a non-ignored match is held; a GT is taken if its IoU >= the best so far.";

PyObject *greedy(PyObject *self, PyObject *args) {
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

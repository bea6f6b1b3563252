/* Compressed-RLE strings -> validity, area, box, foreground intervals (see kernel.h for the format). */
#include "kernel.h"

/* Decode the value starting at s[*pp] into *x; 1 if the chars are not a valid value. Nearly all values of
 * real masks are one char (a small delta), so the loop is entered rarely and the branch predicts well. */
static inline int next_value(const unsigned char *s, Py_ssize_t n, Py_ssize_t *pp, int64_t *x) {
    Py_ssize_t p = *pp;
    unsigned c = (unsigned)s[p++] - 48u; /* a char below '0' wraps to a large value */
    if (c < 32u) {                       /* one chunk: 5-bit two's complement */
        *pp = p;
        *x = (int64_t)(c & 15) - (int64_t)(c & 16);
        return 0;
    }
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
    uint64_t sign = (uint64_t)1 << (shift - 1); /* 0x10 of the last chunk: sign-extend */
    *x = (int64_t)((v ^ sign) - sign);
    return 0;
}

/* Delta state of one string: values come in (background, foreground) pairs; from the 4th value on, a value
 * is a delta against the value two places back, i.e. the previous value of the same kind. */
typedef struct {
    int64_t bg, fg;
    int delta_bg, delta_fg; /* values 0, 1, 2 are raw; later ones are deltas */
} Pairs;

/* The next (background, foreground) pair: *pos advances past the background run; *fg is the foreground run
 * (0 when the string ends after the background). 1 if a value is malformed, negative or runs past the frame
 * (pycocotools would wrap it to uint32 and walk garbage). The caller advances *pos past the foreground. */
static inline int next_pair(const unsigned char *s, Py_ssize_t n, Py_ssize_t *p, Pairs *d, int64_t pixels,
                            int64_t *pos, int64_t *fg) {
    int64_t x;
    if (next_value(s, n, p, &x)) return 1;
    x += d->delta_bg ? d->bg : 0;
    if ((uint64_t)x > (uint64_t)(pixels - *pos)) return 1;
    d->bg = x;
    d->delta_bg = d->delta_fg;
    *pos += x;
    *fg = 0;
    if (*p >= n) return 0;
    if (next_value(s, n, p, &x)) return 1;
    x += d->delta_fg ? d->fg : 0;
    if ((uint64_t)x > (uint64_t)(pixels - *pos)) return 1;
    d->fg = x;
    d->delta_fg = 1;
    *fg = x;
    return 0;
}

/* Parse one string; append its merged foreground intervals to `runs`. Returns 0 if valid, 1 if not (then
 * nothing is appended), -1 when out of memory (no Python error set: runs without the GIL). */
int parse_counts(const unsigned char *s, Py_ssize_t n, int64_t h, int64_t pixels, Buf *runs, int64_t *area,
                 Box *box) {
    /* every value takes at least one char, and every other value is a foreground run */
    if (buf_reserve(runs, (size_t)(n / 2 + 1) * sizeof(Interval))) return -1;
    Interval *const first = (Interval *)(runs->data + runs->len);
    Interval *iv = first;
    Pairs d = {0, 0, 0, 0};
    int64_t pos = 0, col = 0, a = 0;  /* col: first pixel of pos's column, kept without a division per run */
    int64_t ylo = h, yhi = -1;
    Py_ssize_t p = 0;
    while (p < n) {
        int64_t x;
        if (next_pair(s, n, &p, &d, pixels, &pos, &x)) return 1;
        if (x == 0) continue;
        if (pos - col >= h) col = pos - col < 2 * h ? col + h : pos - pos % h;
        if (iv > first && iv[-1].end == (uint64_t)pos) { /* 0-length background run between two: merge */
            iv[-1].end = (uint32_t)(pos + x);
        } else {
            iv->start = (uint32_t)pos;
            iv->end = (uint32_t)(pos + x);
            iv++;
        }
        int64_t r0 = pos - col, r1 = r0 + x - 1;
        if (r1 >= h) { /* crosses a column boundary: every row is covered */
            r0 = 0;
            r1 = h - 1;
        }
        ylo = r0 < ylo ? r0 : ylo;
        yhi = r1 > yhi ? r1 : yhi;
        a += x;
        pos += x;
    }
    if (pos != pixels) return 1;
    runs->len += (size_t)((char *)iv - (char *)first);
    *area = a;
    box->lo = iv > first ? first->start : 0;
    box->hi = iv > first ? iv[-1].end : 0;
    box->ylo = ylo;
    box->yhi = yhi;
    return 0;
}

/* parse_counts without the intervals and the box: validity and area only (frames that never meet a GT). */
int parse_area(const unsigned char *s, Py_ssize_t n, int64_t pixels, int64_t *area) {
    Pairs d = {0, 0, 0, 0};
    int64_t pos = 0, a = 0;
    Py_ssize_t p = 0;
    while (p < n) {
        int64_t x;
        if (next_pair(s, n, &p, &d, pixels, &pos, &x)) return 1;
        a += x;
        pos += x;
    }
    if (pos != pixels) return 1;
    *area = a;
    return 0;
}

/* Ed25519 verification for many signatures made by a few known keys.
 *
 * A verifier checks the cofactorless equation R == [S]B - [k]A and compares encodings, as
 * OpenSSL does. The usual way computes a double scalar multiplication with ~250 doublings.
 * When the same key signs hundreds of thousands of statements (a transparency log's signers),
 * it pays to precompute, once per key, every multiple d * 256^i * A (1 <= d <= 128,
 * 0 <= i < 32) in affine form: then [k]A is at most 32 additions and no doublings, and [S]B
 * likewise from the base point's table. The sum's projective Z coordinates are inverted for
 * a whole batch at once (Montgomery's trick), so encoding R' costs three multiplications.
 *
 * Only public data is handled (keys, signatures, messages), so nothing here needs to run in
 * constant time. Hashing (SHA-512) and the reduction of k modulo L are done by the caller.
 *
 * Field elements are five 51-bit limbs of GF(2^255 - 19); points are extended twisted Edwards
 * coordinates (X:Y:Z:T), and table entries the affine "Niels" form (y+x, y-x, 2dxy). The
 * mixed addition used throughout (Hisil-Wong-Carter-Dawson, a = -1) is complete on this
 * curve, so the identity and equal inputs need no special case.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

typedef unsigned __int128 u128;
typedef uint64_t fe[5];

#define MASK51 ((uint64_t)0x7ffffffffffff)
#define POSITIONS 32
#define MULTIPLES 128
#define ENTRY_WORDS 15
#define TABLE_BYTES (POSITIONS * MULTIPLES * ENTRY_WORDS * 8)
#define BATCH 128
#define RECORD 97 /* key slot (1 byte) | S (32) | k (32) | R (32) */

/* 2d, d = -121665/121666 */
static const fe D2 = {0x69b9426b2f159, 0x35050762add7a, 0x3cf44c0038052, 0x6738cc7407977, 0x2406d9dc56dff};
/* L = 2^252 + 27742317777372353535851937790883648493, little-endian */
static const uint8_t ORDER[32] = {0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7,
                                  0xa2, 0xde, 0xf9, 0xde, 0x14, 0,    0,    0,    0,    0,    0,
                                  0,    0,    0,    0,    0,    0,    0,    0,    0,    0x10};

static inline uint64_t load64(const uint8_t *s) {
    uint64_t r;
    memcpy(&r, s, 8);
    return r; /* little-endian hosts only; checked at import */
}

static void fe_frombytes(fe h, const uint8_t s[32]) {
    h[0] = load64(s) & MASK51;
    h[1] = (load64(s + 6) >> 3) & MASK51;
    h[2] = (load64(s + 12) >> 6) & MASK51;
    h[3] = (load64(s + 19) >> 1) & MASK51;
    h[4] = (load64(s + 24) >> 12) & MASK51;
}

/* The canonical encoding (value reduced below p). Limbs may be up to 2^63. */
static void fe_tobytes(uint8_t s[32], const fe f) {
    uint64_t h0 = f[0], h1 = f[1], h2 = f[2], h3 = f[3], h4 = f[4], c, q;
    for (int round = 0; round < 2; round++) {
        c = h0 >> 51; h0 &= MASK51; h1 += c;
        c = h1 >> 51; h1 &= MASK51; h2 += c;
        c = h2 >> 51; h2 &= MASK51; h3 += c;
        c = h3 >> 51; h3 &= MASK51; h4 += c;
        c = h4 >> 51; h4 &= MASK51; h0 += 19 * c;
    }
    /* now h < 2^255 + 19 < 2p: subtract p once if h + 19 reaches 2^255 */
    q = (h0 + 19) >> 51;
    q = (h1 + q) >> 51;
    q = (h2 + q) >> 51;
    q = (h3 + q) >> 51;
    q = (h4 + q) >> 51;
    h0 += 19 * q;
    c = h0 >> 51; h0 &= MASK51; h1 += c;
    c = h1 >> 51; h1 &= MASK51; h2 += c;
    c = h2 >> 51; h2 &= MASK51; h3 += c;
    c = h3 >> 51; h3 &= MASK51; h4 += c;
    h4 &= MASK51;
    uint64_t w[4] = {h0 | (h1 << 51), (h1 >> 13) | (h2 << 38), (h2 >> 26) | (h3 << 25), (h3 >> 39) | (h4 << 12)};
    memcpy(s, w, 32);
}

static inline void fe_add(fe h, const fe f, const fe g) {
    for (int i = 0; i < 5; i++) h[i] = f[i] + g[i];
}

/* f - g + 4p: stays positive for limbs of g below 2^53 */
static inline void fe_sub(fe h, const fe f, const fe g) {
    h[0] = f[0] + 0x1fffffffffffb4 - g[0];
    for (int i = 1; i < 5; i++) h[i] = f[i] + 0x1ffffffffffffc - g[i];
}

/* Inputs' limbs below 2^54; output limbs below 2^51 + 2^15. */
static void fe_mul(fe h, const fe f, const fe g) {
    uint64_t f0 = f[0], f1 = f[1], f2 = f[2], f3 = f[3], f4 = f[4];
    uint64_t g0 = g[0], g1 = g[1], g2 = g[2], g3 = g[3], g4 = g[4];
    uint64_t g1_19 = 19 * g1, g2_19 = 19 * g2, g3_19 = 19 * g3, g4_19 = 19 * g4;
    u128 r0 = (u128)f0 * g0 + (u128)f1 * g4_19 + (u128)f2 * g3_19 + (u128)f3 * g2_19 + (u128)f4 * g1_19;
    u128 r1 = (u128)f0 * g1 + (u128)f1 * g0 + (u128)f2 * g4_19 + (u128)f3 * g3_19 + (u128)f4 * g2_19;
    u128 r2 = (u128)f0 * g2 + (u128)f1 * g1 + (u128)f2 * g0 + (u128)f3 * g4_19 + (u128)f4 * g3_19;
    u128 r3 = (u128)f0 * g3 + (u128)f1 * g2 + (u128)f2 * g1 + (u128)f3 * g0 + (u128)f4 * g4_19;
    u128 r4 = (u128)f0 * g4 + (u128)f1 * g3 + (u128)f2 * g2 + (u128)f3 * g1 + (u128)f4 * g0;
    r1 += (uint64_t)(r0 >> 51);
    r2 += (uint64_t)(r1 >> 51);
    r3 += (uint64_t)(r2 >> 51);
    r4 += (uint64_t)(r3 >> 51);
    u128 t0 = (u128)(uint64_t)(r4 >> 51) * 19 + ((uint64_t)r0 & MASK51);
    h[0] = (uint64_t)t0 & MASK51;
    h[1] = ((uint64_t)r1 & MASK51) + (uint64_t)(t0 >> 51);
    h[2] = (uint64_t)r2 & MASK51;
    h[3] = (uint64_t)r3 & MASK51;
    h[4] = (uint64_t)r4 & MASK51;
}

/* h = f^(2^n), n >= 1 */
static void fe_sqn(fe h, const fe f, int n) {
    fe_mul(h, f, f);
    while (--n > 0) fe_mul(h, h, h);
}

/* z^(p-2) = z^(2^255 - 21); zA_B stands for z^(2^A - 2^B) */
static void fe_invert(fe out, const fe z) {
    fe z2, z9, z11, t, z5_0, z10_0, z20_0, z50_0, z100_0;
    fe_mul(z2, z, z);
    fe_sqn(t, z2, 2);
    fe_mul(z9, t, z);
    fe_mul(z11, z9, z2);
    fe_mul(t, z11, z11);
    fe_mul(z5_0, t, z9);
    fe_sqn(t, z5_0, 5);
    fe_mul(z10_0, t, z5_0);
    fe_sqn(t, z10_0, 10);
    fe_mul(z20_0, t, z10_0);
    fe_sqn(t, z20_0, 20);
    fe_mul(t, t, z20_0);
    fe_sqn(t, t, 10);
    fe_mul(z50_0, t, z10_0);
    fe_sqn(t, z50_0, 50);
    fe_mul(z100_0, t, z50_0);
    fe_sqn(t, z100_0, 100);
    fe_mul(t, t, z100_0);
    fe_sqn(t, t, 50);
    fe_mul(t, t, z50_0);
    fe_sqn(t, t, 5);
    fe_mul(out, t, z11);
}

typedef struct {
    fe X, Y, Z, T;
} point;

typedef struct {
    fe ypx, ymx, xy2d;
} niels;

/* p += q (negate: p -= q) for an affine q in Niels form */
static inline void madd(point *p, const niels *q, int negate) {
    fe a, b, c, d, e, f, g, h;
    fe_sub(a, p->Y, p->X);
    fe_add(b, p->Y, p->X);
    fe_mul(a, a, negate ? q->ypx : q->ymx);
    fe_mul(b, b, negate ? q->ymx : q->ypx);
    fe_mul(c, p->T, q->xy2d);
    fe_add(d, p->Z, p->Z);
    fe_sub(e, b, a);
    fe_add(h, b, a);
    if (negate) {
        fe_add(f, d, c);
        fe_sub(g, d, c);
    } else {
        fe_sub(f, d, c);
        fe_add(g, d, c);
    }
    fe_mul(p->X, e, f);
    fe_mul(p->Y, g, h);
    fe_mul(p->T, e, h);
    fe_mul(p->Z, f, g);
}

static void canon(fe h) {
    uint8_t s[32];
    fe_tobytes(s, h);
    fe_frombytes(h, s);
}

static void to_niels(niels *n, const fe x, const fe y) {
    fe t;
    fe_add(n->ypx, y, x);
    canon(n->ypx);
    fe_sub(n->ymx, y, x);
    canon(n->ymx);
    fe_mul(t, x, y);
    fe_mul(n->xy2d, t, D2);
    canon(n->xy2d);
}

/* out[i] = 1 / z[i] for n nonzero z (Montgomery's trick); scratch holds n elements */
static void batch_invert(fe *out, fe *const *z, int n, fe *scratch) {
    fe inv, t;
    if (n == 0) return;
    memcpy(scratch[0], *z[0], sizeof(fe));
    for (int i = 1; i < n; i++) fe_mul(scratch[i], scratch[i - 1], *z[i]);
    fe_invert(inv, scratch[n - 1]);
    for (int i = n - 1; i > 0; i--) {
        fe_mul(out[i], inv, scratch[i - 1]);
        fe_mul(t, inv, *z[i]);
        memcpy(inv, t, sizeof(fe));
    }
    memcpy(out[0], inv, sizeof(fe));
}

/* Fill table[i][j] = (j+1) * 256^i * P for the affine point P = (x, y). */
static void build_table(niels *table, const fe x0, const fe y0) {
    static point run[MULTIPLES];
    static fe zinv[MULTIPLES], scratch[MULTIPLES];
    fe *zs[MULTIPLES];
    fe x, y;
    memcpy(x, x0, sizeof(fe));
    memcpy(y, y0, sizeof(fe));
    for (int i = 0; i < POSITIONS; i++) {
        niels base;
        to_niels(&base, x, y);
        point *p = &run[0];
        memcpy(p->X, x, sizeof(fe));
        memcpy(p->Y, y, sizeof(fe));
        memset(p->Z, 0, sizeof(fe));
        p->Z[0] = 1;
        fe_mul(p->T, x, y);
        for (int j = 1; j < MULTIPLES; j++) {
            run[j] = run[j - 1];
            madd(&run[j], &base, 0);
        }
        for (int j = 0; j < MULTIPLES; j++) zs[j] = &run[j].Z;
        batch_invert(zinv, zs, MULTIPLES, scratch);
        fe ax, ay;
        for (int j = 0; j < MULTIPLES; j++) {
            fe_mul(ax, run[j].X, zinv[j]);
            fe_mul(ay, run[j].Y, zinv[j]);
            to_niels(&table[i * MULTIPLES + j], ax, ay);
        }
        /* next position's base: 256 * P = 2 * (128 * P) */
        point dbl = run[MULTIPLES - 1];
        madd(&dbl, &table[i * MULTIPLES + MULTIPLES - 1], 0);
        fe zi;
        fe_invert(zi, dbl.Z);
        fe_mul(x, dbl.X, zi);
        fe_mul(y, dbl.Y, zi);
        canon(x);
        canon(y);
    }
}

/* 32 signed base-256 digits in [-128, 127] of a scalar below 2^255 - 2^7 * 256^31. */
static void digits(int d[POSITIONS], const uint8_t s[32]) {
    int carry = 0;
    for (int i = 0; i < POSITIONS; i++) {
        int v = s[i] + carry;
        carry = v >= 128;
        d[i] = v - (carry << 8);
    }
}

static int below_order(const uint8_t s[32]) {
    for (int i = 31; i >= 0; i--) {
        if (s[i] < ORDER[i]) return 1;
        if (s[i] > ORDER[i]) return 0;
    }
    return 0;
}

static void add_multiple(point *acc, const niels *table, const uint8_t scalar[32], int negate) {
    int d[POSITIONS];
    digits(d, scalar);
    for (int i = 0; i < POSITIONS; i++) {
        int v = d[i];
        if (v > 0)
            madd(acc, &table[i * MULTIPLES + v - 1], negate);
        else if (v < 0)
            madd(acc, &table[i * MULTIPLES - v - 1], !negate);
    }
}

static PyObject *py_table(PyObject *self, PyObject *args) {
    const uint8_t *xb, *yb;
    Py_ssize_t xn, yn;
    if (!PyArg_ParseTuple(args, "y#y#", &xb, &xn, &yb, &yn)) return NULL;
    if (xn != 32 || yn != 32) {
        PyErr_SetString(PyExc_ValueError, "coordinates must be 32 bytes");
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, TABLE_BYTES);
    if (out == NULL) return NULL;
    fe x, y;
    fe_frombytes(x, xb);
    fe_frombytes(y, yb);
    build_table((niels *)PyBytes_AS_STRING(out), x, y);
    return out;
}

static PyObject *py_verify(PyObject *self, PyObject *args) {
    PyObject *tables_obj;
    const uint8_t *rec;
    Py_ssize_t rec_len;
    if (!PyArg_ParseTuple(args, "Oy#", &tables_obj, &rec, &rec_len)) return NULL;
    if (rec_len % RECORD) {
        PyErr_SetString(PyExc_ValueError, "records must be 97 bytes each");
        return NULL;
    }
    PyObject *seq = PySequence_Fast(tables_obj, "tables must be a sequence of bytes");
    if (seq == NULL) return NULL;
    Py_ssize_t nt = PySequence_Fast_GET_SIZE(seq);
    if (nt < 1 || nt > 256) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "between 1 and 256 tables (the base point's first)");
        return NULL;
    }
    const niels *tables[256];
    for (Py_ssize_t i = 0; i < nt; i++) {
        PyObject *t = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyBytes_Check(t) || PyBytes_GET_SIZE(t) != TABLE_BYTES) {
            Py_DECREF(seq);
            PyErr_SetString(PyExc_ValueError, "every table must be bytes made by table()");
            return NULL;
        }
        tables[i] = (const niels *)PyBytes_AS_STRING(t);
    }
    Py_ssize_t n = rec_len / RECORD;
    PyObject *out = PyBytes_FromStringAndSize(NULL, n);
    if (out == NULL) {
        Py_DECREF(seq);
        return NULL;
    }
    uint8_t *verdict = (uint8_t *)PyBytes_AS_STRING(out);
    Py_BEGIN_ALLOW_THREADS;
    point acc[BATCH];
    fe zinv[BATCH], scratch[BATCH];
    fe *zs[BATCH];
    Py_ssize_t idx[BATCH];
    for (Py_ssize_t start = 0; start < n; start += BATCH) {
        int m = 0;
        Py_ssize_t stop = start + BATCH < n ? start + BATCH : n;
        for (Py_ssize_t r = start; r < stop; r++) {
            const uint8_t *p = rec + r * RECORD;
            verdict[r] = 0;
            if (p[0] == 0 || p[0] >= nt || !below_order(p + 1) || !below_order(p + 33)) continue;
            point *a = &acc[m];
            memset(a, 0, sizeof(point));
            a->Y[0] = 1;
            a->Z[0] = 1;
            add_multiple(a, tables[0], p + 1, 0);     /* + [S]B */
            add_multiple(a, tables[p[0]], p + 33, 1); /* - [k]A */
            zs[m] = &a->Z;
            idx[m++] = r;
        }
        batch_invert(zinv, zs, m, scratch);
        for (int j = 0; j < m; j++) {
            fe x, y;
            uint8_t xs[32], ys[32];
            fe_mul(x, acc[j].X, zinv[j]);
            fe_mul(y, acc[j].Y, zinv[j]);
            fe_tobytes(xs, x);
            fe_tobytes(ys, y);
            ys[31] |= (uint8_t)((xs[0] & 1) << 7);
            verdict[idx[j]] = memcmp(ys, rec + idx[j] * RECORD + 65, 32) == 0;
        }
    }
    Py_END_ALLOW_THREADS;
    Py_DECREF(seq);
    return out;
}

static PyMethodDef methods[] = {
    {"table", py_table, METH_VARARGS,
     "table(x, y) -> bytes: the multiples d * 256^i * P (1 <= d <= 128, 0 <= i < 32) of the affine "
     "point P = (x, y), each coordinate 32 canonical little-endian bytes."},
    {"verify", py_verify, METH_VARARGS,
     "verify(tables, records) -> bytes: one byte per 97-byte record (key slot, S, k, R), 1 where "
     "R == encode([S]B - [k]A) with B = tables[0] and A = tables[slot], S and k below L, slot >= 1."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ed25519",
                                    "Ed25519 verification against precomputed tables of fixed keys.", -1,
                                    methods};

PyMODINIT_FUNC PyInit__ed25519(void) {
    const uint16_t one = 1;
    if (*(const uint8_t *)&one != 1) {
        PyErr_SetString(PyExc_ImportError, "_ed25519 needs a little-endian machine");
        return NULL;
    }
    return PyModule_Create(&module);
}

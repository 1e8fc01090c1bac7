/* Duplicate fingerprints for `ima.ingest.dedup`, a batch of texts at a time.
 *
 * Per post this is a loop over its words: split, hash, shingle, MinHash, band. Done
 * in Python (a regex, a dict of term hashes, then numpy over the batch) it cost about
 * four times as much (README "Performance notes"); here it is one pass over the
 * text's code points. The definitions:
 *
 *   words    maximal runs of `str.isalnum` characters of `text.lower()` (the regex
 *            `[^\W_]+`), each hashed as XXH64 (seed 0) of its UTF-8 bytes
 *   key      XXH64 of the words joined by single spaces
 *   numbers  XXH64 of the words that are all digits (`str.isdigit`), joined likewise
 *   shingles h[i] * mix1 + h[i+1] * mix2 + h[i+2], for each run of three words
 *   minhash  for each (mul, add): the least of shingle * mul + add
 *   bands    for each band b: the sum over its rows r of minhash[b * rows + r] *
 *            band_mix[r], plus band_salt[b]
 *
 * all arithmetic on unsigned 64-bit integers, wrapping. tests/test_fingerprints.py
 * holds the same definitions in Python and checks that both agree.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "XXH64 reads, and shingles are stored as, little-endian words"
#endif

#define P1 0x9E3779B185EBCA87ULL
#define P2 0xC2B2AE3D27D4EB4FULL
#define P3 0x165667B19E3779F9ULL
#define P4 0x85EBCA77C2B2AE63ULL
#define P5 0x27D4EB2F165667C5ULL

static inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static inline uint64_t read64(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint32_t read32(const unsigned char *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline uint64_t step(uint64_t acc, uint64_t input) {
    acc += input * P2;
    return rotl(acc, 31) * P1;
}

static inline uint64_t merge(uint64_t acc, uint64_t lane) {
    acc ^= step(0, lane);
    return acc * P1 + P4;
}

/* XXH64 with seed 0, as `xxhash.xxh64_intdigest` computes it. */
static uint64_t xxh64(const unsigned char *p, size_t len) {
    const unsigned char *end = p + len;
    uint64_t h;
    if (len >= 32) {
        uint64_t v1 = P1 + P2, v2 = P2, v3 = 0, v4 = 0 - P1;
        const unsigned char *limit = end - 32;
        do {
            v1 = step(v1, read64(p));
            v2 = step(v2, read64(p + 8));
            v3 = step(v3, read64(p + 16));
            v4 = step(v4, read64(p + 24));
            p += 32;
        } while (p <= limit);
        h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18);
        h = merge(h, v1);
        h = merge(h, v2);
        h = merge(h, v3);
        h = merge(h, v4);
    } else {
        h = P5;
    }
    h += (uint64_t)len;
    for (; p + 8 <= end; p += 8) {
        h ^= step(0, read64(p));
        h = rotl(h, 27) * P1 + P4;
    }
    if (p + 4 <= end) {
        h ^= (uint64_t)read32(p) * P1;
        h = rotl(h, 23) * P2 + P3;
        p += 4;
    }
    for (; p < end; p++) {
        h ^= (uint64_t)(*p) * P5;
        h = rotl(h, 11) * P1;
    }
    h ^= h >> 33;
    h *= P2;
    h ^= h >> 29;
    h *= P3;
    h ^= h >> 32;
    return h;
}

/* UTF-8 of one code point, lone surrogates included (Python's "surrogatepass"). */
static inline size_t put_utf8(unsigned char *out, Py_UCS4 c) {
    if (c < 0x80) {
        out[0] = (unsigned char)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (unsigned char)(0xC0 | (c >> 6));
        out[1] = (unsigned char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (unsigned char)(0xE0 | (c >> 12));
        out[1] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
        out[2] = (unsigned char)(0x80 | (c & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | (c >> 18));
    out[1] = (unsigned char)(0x80 | ((c >> 12) & 0x3F));
    out[2] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
    out[3] = (unsigned char)(0x80 | (c & 0x3F));
    return 4;
}

typedef struct {
    uint64_t mix1, mix2;
    const uint64_t *mul, *add, *band_mix, *band_salt;
    Py_ssize_t hashes, bands, rows, min_terms;
} Params;

/* Scratch space for one text, grown as texts need. */
typedef struct {
    unsigned char *joined, *digits;
    uint64_t *words, *minhash;
    Py_ssize_t capacity; /* code points the buffers hold room for */
} Scratch;

static int reserve(Scratch *s, Py_ssize_t length, Py_ssize_t hashes) {
    if (length <= s->capacity && s->minhash != NULL)
        return 0;
    Py_ssize_t room = length < 256 ? 256 : length;
    PyMem_Free(s->joined);
    PyMem_Free(s->digits);
    PyMem_Free(s->words);
    s->joined = PyMem_Malloc((size_t)room * 5);  /* 4 bytes a code point, a space a word */
    s->digits = PyMem_Malloc((size_t)room * 5);
    s->words = PyMem_Malloc((size_t)room * sizeof(uint64_t));
    if (s->minhash == NULL)
        s->minhash = PyMem_Malloc((size_t)hashes * sizeof(uint64_t));
    s->capacity = room;
    if (!s->joined || !s->digits || !s->words || !s->minhash) {
        s->capacity = 0;
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* One text's fingerprint as (key, numbers, shingles, bands), or None when it has
 * fewer than min_terms words. */
static PyObject *fingerprint(PyObject *text, const Params *k, Scratch *s) {
    PyObject *lower = PyObject_CallMethod(text, "lower", NULL);
    if (lower == NULL)
        return NULL;
    Py_ssize_t length = PyUnicode_GET_LENGTH(lower);
    if (reserve(s, length, k->hashes) < 0) {
        Py_DECREF(lower);
        return NULL;
    }
    int kind = PyUnicode_KIND(lower);
    const void *data = PyUnicode_DATA(lower);
    size_t joined = 0, digits = 0;
    Py_ssize_t words = 0, i = 0;
    while (i < length) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (!Py_UNICODE_ISALNUM(c)) {
            i++;
            continue;
        }
        if (words)
            s->joined[joined++] = ' ';
        size_t start = joined;
        int all_digits = 1;
        for (; i < length; i++) {
            c = PyUnicode_READ(kind, data, i);
            if (!Py_UNICODE_ISALNUM(c))
                break;
            all_digits &= Py_UNICODE_ISDIGIT(c) != 0;
            joined += put_utf8(s->joined + joined, c);
        }
        s->words[words++] = xxh64(s->joined + start, joined - start);
        if (all_digits) {
            if (digits)
                s->digits[digits++] = ' ';
            memcpy(s->digits + digits, s->joined + start, joined - start);
            digits += joined - start;
        }
    }
    Py_DECREF(lower);
    if (words < k->min_terms)
        Py_RETURN_NONE;
    Py_ssize_t count = words - 2;
    PyObject *shingles = PyBytes_FromStringAndSize(NULL, count * (Py_ssize_t)sizeof(uint64_t));
    if (shingles == NULL)
        return NULL;
    uint64_t *shingle = (uint64_t *)PyBytes_AS_STRING(shingles);
    for (Py_ssize_t n = 0; n < count; n++)
        shingle[n] = s->words[n] * k->mix1 + s->words[n + 1] * k->mix2 + s->words[n + 2];
    for (Py_ssize_t h = 0; h < k->hashes; h++) {
        uint64_t least = UINT64_MAX, mul = k->mul[h], add = k->add[h];
        for (Py_ssize_t n = 0; n < count; n++) {
            uint64_t value = shingle[n] * mul + add;
            if (value < least)
                least = value;
        }
        s->minhash[h] = least;
    }
    PyObject *bands = PyTuple_New(k->bands);
    if (bands == NULL) {
        Py_DECREF(shingles);
        return NULL;
    }
    for (Py_ssize_t b = 0; b < k->bands; b++) {
        uint64_t sum = k->band_salt[b];
        for (Py_ssize_t r = 0; r < k->rows; r++)
            sum += s->minhash[b * k->rows + r] * k->band_mix[r];
        PyObject *value = PyLong_FromUnsignedLongLong(sum);
        if (value == NULL) {
            Py_DECREF(bands);
            Py_DECREF(shingles);
            return NULL;
        }
        PyTuple_SET_ITEM(bands, b, value);
    }
    return Py_BuildValue("(KKNN)", (unsigned long long)xxh64(s->joined, joined),
                         (unsigned long long)xxh64(s->digits, digits), shingles, bands);
}

static int words_of(PyObject *bytes, Py_ssize_t *count, const uint64_t **words, const char *name) {
    if (!PyBytes_Check(bytes) || PyBytes_GET_SIZE(bytes) % 8 != 0) {
        PyErr_Format(PyExc_ValueError, "%s: expected bytes of 64-bit words", name);
        return -1;
    }
    *count = PyBytes_GET_SIZE(bytes) / 8;
    *words = (const uint64_t *)PyBytes_AS_STRING(bytes);
    return 0;
}

static PyObject *fingerprints(PyObject *module, PyObject *args) {
    PyObject *texts, *mul, *add, *band_mix, *band_salt;
    unsigned long long mix1, mix2;
    Params k;
    if (!PyArg_ParseTuple(args, "OnKKSSSS:fingerprints", &texts, &k.min_terms, &mix1, &mix2,
                          &mul, &add, &band_mix, &band_salt))
        return NULL;
    Py_ssize_t adds;
    if (words_of(mul, &k.hashes, &k.mul, "mul") < 0 || words_of(add, &adds, &k.add, "add") < 0 ||
        words_of(band_mix, &k.rows, &k.band_mix, "band_mix") < 0 ||
        words_of(band_salt, &k.bands, &k.band_salt, "band_salt") < 0)
        return NULL;
    if (adds != k.hashes || k.hashes != k.bands * k.rows || k.hashes < 1 || k.min_terms < 3) {
        PyErr_SetString(PyExc_ValueError,
                        "need as many adds as muls, bands * rows of them, and min_terms >= 3");
        return NULL;
    }
    k.mix1 = mix1;
    k.mix2 = mix2;
    PyObject *seq = PySequence_Fast(texts, "texts: expected a sequence of str");
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject *out = PyList_New(n);
    Scratch scratch = {NULL, NULL, NULL, NULL, 0};
    for (Py_ssize_t i = 0; out != NULL && i < n; i++) {
        PyObject *text = PySequence_Fast_GET_ITEM(seq, i);
        PyObject *item = NULL;
        if (!PyUnicode_Check(text))
            PyErr_Format(PyExc_TypeError, "texts[%zd]: expected str", i);
        else
            item = fingerprint(text, &k, &scratch);
        if (item == NULL)
            Py_CLEAR(out);
        else
            PyList_SET_ITEM(out, i, item);
    }
    PyMem_Free(scratch.joined);
    PyMem_Free(scratch.digits);
    PyMem_Free(scratch.words);
    PyMem_Free(scratch.minhash);
    Py_DECREF(seq);
    return out;
}

static PyMethodDef methods[] = {
    {"fingerprints", fingerprints, METH_VARARGS,
     "fingerprints(texts, min_terms, mix1, mix2, mul, add, band_mix, band_salt) -> list of "
     "(key, numbers, shingles, bands) or None, one a text (see ima.ingest.dedup)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fingerprints",
    "Duplicate fingerprints in one pass over each text (see ima.ingest.dedup).", -1, methods,
};

PyMODINIT_FUNC PyInit__fingerprints(void) { return PyModule_Create(&module); }

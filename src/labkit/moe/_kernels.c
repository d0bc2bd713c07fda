/* Fused CPU kernels for labkit.moe.block.MoEBlock (float32, SwiGLU experts, no gradient).
 *
 * Built on first use by labkit/moe/kernels.py (cc -O3 -march=native -fopenmp -shared) and called
 * through ctypes with raw pointers; every caller checks shapes, dtypes and contiguity first.
 * Threads come from the OpenMP runtime torch already loaded (same libgomp soname), so the
 * kernels share torch's thread pool instead of starting a second one.
 *
 * Weight layout (WEIGHT_LAYOUT 2): w1 [N, d, 2m] (gate columns 0..m-1, up columns m..2m-1),
 * w2 [N, m, d]; expert e's output is (SiLU(x w1[e][:, :m]) * x w1[e][:, m:]) w2[e].
 *
 * lk_moe_decode: one token, the chosen experts only. Both stages stream the chosen experts'
 *   rows once, split into contiguous row ranges per thread (partial sums, then one reduction):
 *   stage 1 h = sum_i x_i w1[e, i, :] over the k*d (expert, input) rows; stage 2
 *   y = sum_(e,r) g[e, r] w2[e, r, :] over the k*m (expert, neuron) rows.
 * lk_moe_decode_rule: the same with the routing done here (router logits, a top-k, top-p or switch
 *   rule, weights).
 * lk_moe_prefill: T tokens with a selection mask [T, N] (and optional weights [T, N]). Tokens are
 *   cut into blocks; a thread owns a block: for each expert it gathers the block's tokens routed
 *   there into a thread-local buffer, runs gate/up and down as single-threaded BLAS sgemm calls,
 *   and adds the results into the block's own output rows (no two threads write one row). A thread
 *   that runs out of blocks takes (expert, chunk) items from the back of another's block into a
 *   buffer that the block's owner adds in, in expert order (work stealing, lk_prefill_blocks).
 *   With weights packed in labkit's own layout (small experts, AVX-512) the experts run as
 *   register-tile kernels instead (lk_gate_up, lk_down) that read the tokens' rows in place and add
 *   their outputs straight into the output rows: no gather into a buffer, no scatter pass.
 * lk_moe_prefill_topk: the same with top-k routing done per block (router logits by register tiles).
 * lk_pack_experts: the experts' weights in MKL's packed GEMM layout or labkit's own panels, for the
 *   prefill kernels.
 */
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#ifdef __AVX512F__
#include <immintrin.h>
#endif

#define LK_ABI 8
#define LK_MAX_EXPERTS 1024 /* lk_moe_decode_rule's stack arrays */

typedef void (*lk_sgemm_fn)(const char *, const char *, const int *, const int *, const int *,
                            const float *, const float *, const int *, const float *, const int *,
                            const float *, float *, const int *);
typedef int (*lk_set_threads_fn)(int);

static lk_sgemm_fn lk_sgemm = NULL;
static lk_set_threads_fn lk_blas_local_threads = NULL;

int lk_abi(void) { return LK_ABI; }

/* Fortran BLAS sgemm_ (e.g. MKL's inside libtorch_cpu) and, optionally, a per-thread
 * thread-count setter (MKL's MKL_Set_Num_Threads_Local, int by value); NULL disables lk_moe_prefill. */
void lk_set_blas(void *sgemm, void *set_local_threads) {
    lk_sgemm = (lk_sgemm_fn)sgemm;
    lk_blas_local_threads = (lk_set_threads_fn)set_local_threads;
}

int lk_has_blas(void) { return lk_sgemm != NULL; }

/* MKL's packed-GEMM interface (cblas_sgemm_pack_get_size / _pack / _compute): an expert's weight
 * matrix packed once into MKL's internal layout is reused by every GEMM of every call, where plain
 * sgemm re-packs it each time (a large share of a 128-row GEMM's time at these sizes). */
typedef size_t (*lk_pack_size_fn)(int, int, int, int);
typedef void (*lk_pack_fn)(int, int, int, int, int, int, float, const float *, int, float *);
typedef void (*lk_compute_fn)(int, int, int, int, int, int, const float *, int, const float *, int, float,
                              float *, int);
static lk_pack_size_fn lk_pack_size = NULL;
static lk_pack_fn lk_pack = NULL;
static lk_compute_fn lk_compute = NULL;
enum { LK_ROW_MAJOR = 101, LK_NO_TRANS = 111, LK_PACKED = 151, LK_B_MATRIX = 162 }; /* CBLAS values */

void lk_set_pack(void *get_size, void *pack, void *compute) {
    lk_pack_size = (lk_pack_size_fn)get_size;
    lk_pack = (lk_pack_fn)pack;
    lk_compute = (lk_compute_fn)compute;
}

int lk_has_pack(void) { return lk_pack_size && lk_pack && lk_compute && lk_sgemm; }

/* The packed weights of one block: p1[e] holds w1[e] [d, 2m] and p2[e] holds w2[e] [m, d] as the
 * B operand of row-major GEMMs with up to `rows` rows. MKL asks for ~9 MB per matrix whatever its
 * size but writes about the matrix's own size, so the buffers are carved from one anonymous,
 * unreserved mapping: untouched pages cost address space, not memory (see lk_pack_resident).
 * With `own` (AVX-512 builds, lk_has_own), p1[e] holds w1[e] instead as LK_GU_NEURONS-neuron panels
 * for lk_gate_up_8 (panel p is [d][2 * LK_GU_NEURONS]: the gate columns of neurons
 * p*LK_GU_NEURONS.. then their up columns, zero past m) and p2[e] holds w2[e] as LK_DN_COLS-column
 * panels for lk_down_8 ([m][LK_DN_COLS], zero past d). */
#define LK_GU_NEURONS 24 /* neurons per gate/up panel: 3 AVX-512 vectors of columns */
#define LK_GU_ROWS 8     /* tokens per gate/up micro-kernel call (8 x 3 accumulators) */
#define LK_DN_COLS 48    /* output columns per down-projection panel */
/* Own layout (auto) while an expert's gate/up panels take at most this many bytes: up to there
 * the register-tile kernels keep up with MKL's packed GEMMs (which need gathered rows and a
 * scatter pass) and use less scratch; above it MKL's are as fast or faster (benchmarks/NOTES_moe.md). */
#define LK_OWN_MAX_BYTES (1 << 20)
/* lk_down runs an expert's down panels in sets of at most this many bytes */
#define LK_DN_SET_BYTES (512 << 10)
/* Bytes of a thread's buffer for outputs of items taken from its block by other threads (work
 * stealing, lk_prefill_blocks): 1820 token rows at d = 576, 256 at d = 4096. */
#define LK_STEAL_BYTES ((int64_t)4 << 20)
#define LK_PROBES 128 /* weights sampled per matrix at pack time (lk_pack_check) */

typedef struct {
    int64_t n_exp, d, m, rows;
    int own; /* p1, p2 in labkit's own panels instead of MKL's layout */
    void *map;
    size_t map_bytes;
    float **p1, **p2;
    uint32_t probe[2][LK_PROBES]; /* bit patterns of evenly spaced elements of w1 and w2 */
} lk_packed;

static void lk_probe(const float *w1, const float *w2, int64_t n1, int64_t n2, uint32_t out[2][LK_PROBES]) {
    for (int i = 0; i < LK_PROBES; ++i) {
        memcpy(&out[0][i], w1 + (n1 - 1) * i / (LK_PROBES - 1), sizeof(uint32_t));
        memcpy(&out[1][i], w2 + (n2 - 1) * i / (LK_PROBES - 1), sizeof(uint32_t));
    }
}

/* 1 when the sampled elements of w1, w2 still equal those packed (bitwise), else 0: catches edits
 * that bypass PyTorch's version counters (`param.data.mul_(...)`) unless they touch few weights. */
static int lk_pack_check(const void *handle, const float *w1, const float *w2) {
    const lk_packed *pk = (const lk_packed *)handle;
    uint32_t now[2][LK_PROBES];
    lk_probe(w1, w2, pk->n_exp * pk->d * 2 * pk->m, pk->n_exp * pk->m * pk->d, now);
    return memcmp(now, pk->probe, sizeof now) == 0;
}

void lk_pack_free(void *handle) {
    lk_packed *pk = (lk_packed *)handle;
    if (pk == NULL) return;
    if (pk->map) munmap(pk->map, pk->map_bytes);
    free(pk->p1);
    free(pk->p2);
    free(pk);
}

int lk_has_own(void) {
#ifdef __AVX512F__
    return 1;
#else
    return 0;
#endif
}

/* own: 1 labkit's panels (where lk_has_own), 0 MKL's layout, -1 own while an expert's gate/up panels
 * take at most LK_OWN_MAX_BYTES. NULL without MKL's packed GEMM or memory. */
void *lk_pack_experts(const float *w1, const float *w2, int64_t n_exp, int64_t d, int64_t m, int64_t rows, int own) {
    if (!lk_has_pack() || n_exp < 1 || d < 1 || m < 1 || rows < 1) return NULL;
    own = lk_has_own() ? own : 0;
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const int M = (int)rows, N2 = (int)(2 * m), Kd = (int)d, Nd = (int)d, Km = (int)m;
    const int64_t np = (m + LK_GU_NEURONS - 1) / LK_GU_NEURONS, npd = (d + LK_DN_COLS - 1) / LK_DN_COLS;
    const size_t own1 = (size_t)(np * d * 2 * LK_GU_NEURONS) * sizeof(float);
    const size_t own2 = (size_t)(npd * m * LK_DN_COLS) * sizeof(float);
    if (own < 0) own = own1 <= LK_OWN_MAX_BYTES;
    const size_t s1 = ((own ? own1 : lk_pack_size(LK_B_MATRIX, M, N2, Kd)) + page - 1) / page * page;
    const size_t s2 = ((own ? own2 : lk_pack_size(LK_B_MATRIX, M, Nd, Km)) + page - 1) / page * page;
    lk_packed *pk = (lk_packed *)calloc(1, sizeof *pk);
    if (pk == NULL) return NULL;
    pk->n_exp = n_exp, pk->d = d, pk->m = m, pk->rows = rows, pk->own = own;
    pk->p1 = (float **)calloc((size_t)n_exp, sizeof(float *));
    pk->p2 = (float **)calloc((size_t)n_exp, sizeof(float *));
    pk->map_bytes = (size_t)n_exp * (s1 + s2);
    void *map = mmap(NULL, pk->map_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    pk->map = map == MAP_FAILED ? NULL : map;
    if (pk->p1 == NULL || pk->p2 == NULL || pk->map == NULL) {
        lk_pack_free(pk);
        return NULL;
    }
    const int old = lk_blas_local_threads ? lk_blas_local_threads(1) : 0;
    for (int64_t e = 0; e < n_exp; ++e) {
        pk->p1[e] = (float *)((char *)pk->map + (size_t)e * (s1 + s2));
        pk->p2[e] = (float *)((char *)pk->p1[e] + s1);
        const float *w1e = w1 + e * d * 2 * m;
        if (own)
            for (int64_t p = 0; p < np; ++p)
                for (int64_t i = 0; i < d; ++i) {
                    float *dst = pk->p1[e] + (p * d + i) * 2 * LK_GU_NEURONS;
                    for (int64_t j = 0; j < LK_GU_NEURONS; ++j) {
                        const int64_t n = p * LK_GU_NEURONS + j;
                        dst[j] = n < m ? w1e[i * 2 * m + n] : 0.0f;
                        dst[LK_GU_NEURONS + j] = n < m ? w1e[i * 2 * m + m + n] : 0.0f;
                    }
                }
        else
            lk_pack(LK_ROW_MAJOR, LK_B_MATRIX, LK_NO_TRANS, M, N2, Kd, 1.0f, w1e, N2, pk->p1[e]);
        const float *w2e = w2 + e * m * d;
        if (own)
            for (int64_t p = 0; p < npd; ++p)
                for (int64_t i = 0; i < m; ++i)
                    for (int64_t j = 0; j < LK_DN_COLS; ++j) {
                        const int64_t col = p * LK_DN_COLS + j;
                        pk->p2[e][(p * m + i) * LK_DN_COLS + j] = col < d ? w2e[i * d + col] : 0.0f;
                    }
        else
            lk_pack(LK_ROW_MAJOR, LK_B_MATRIX, LK_NO_TRANS, M, Nd, Km, 1.0f, w2e, Nd, pk->p2[e]);
    }
    if (lk_blas_local_threads) lk_blas_local_threads(old);
    lk_probe(w1, w2, n_exp * d * 2 * m, n_exp * m * d, pk->probe);
    return pk;
}

int lk_pack_own(const void *handle) { return handle ? ((const lk_packed *)handle)->own : 0; }

/* Bytes of the packed buffers actually in memory (mincore), or -1 when it cannot be told. */
int64_t lk_pack_resident(const void *handle) {
    const lk_packed *pk = (const lk_packed *)handle;
    if (pk == NULL || pk->map == NULL) return -1;
    const size_t page = (size_t)sysconf(_SC_PAGESIZE), pages = (pk->map_bytes + page - 1) / page;
    unsigned char *vec = (unsigned char *)malloc(pages);
    if (vec == NULL) return -1;
    int64_t resident = -1;
    if (mincore(pk->map, pk->map_bytes, vec) == 0) {
        resident = 0;
        for (size_t i = 0; i < pages; ++i) resident += (vec[i] & 1) ? (int64_t)page : 0;
    }
    free(vec);
    return resident;
}

/* exp(x) for float32 (Cephes expf: x = n ln2 + r, n = round(x / ln2), |r| <= ln2/2, degree-6
 * polynomial; relative error ~1e-7). Written without library calls (fminf, floorf) and with
 * round-to-nearest by the 1.5 * 2^23 trick, so that gcc vectorises loops over it without
 * -ffast-math. */
static inline float lk_exp(float x) {
    x = x < -87.3f ? -87.3f : x; /* n >= -126: the smallest normal power of two */
    x = x > 88.0f ? 88.0f : x;   /* n <= 127: finite (exp(88) = 1.65e38) */
    const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union {
        int32_t i;
        float f;
    } scale = {.i = ((int32_t)n + 127) << 23};
    return p * scale.f;
}

static inline float lk_silu(float v) { return v / (1.0f + lk_exp(-v)); }

/* acc[0:n] += sum_q a[q] * rows[q * stride + 0:n] for q < nr (rows streamed in order). */
static void lk_axpy_rows(float *restrict acc, const float *restrict rows, int64_t stride,
                         const float *restrict a, int64_t nr, int64_t n) {
    int64_t q = 0;
    for (; q + 4 <= nr; q += 4) {
        const float a0 = a[q], a1 = a[q + 1], a2 = a[q + 2], a3 = a[q + 3];
        const float *r0 = rows + q * stride, *r1 = r0 + stride, *r2 = r1 + stride, *r3 = r2 + stride;
#pragma omp simd
        for (int64_t c = 0; c < n; ++c) acc[c] += a0 * r0[c] + a1 * r1[c] + a2 * r2[c] + a3 * r3[c];
    }
    for (; q < nr; ++q) {
        const float a0 = a[q];
        const float *r0 = rows + q * stride;
#pragma omp simd
        for (int64_t c = 0; c < n; ++c) acc[c] += a0 * r0[c];
    }
}

/* Per-thread scratch, grown on demand and kept between calls (touching fresh pages costs more
 * than the work at these sizes); freed when its thread exits. Returns NULL when allocation fails. */
typedef struct {
    float *buf;
    int64_t cap;
} lk_scratch_t;

static pthread_key_t lk_scratch_key;
static pthread_once_t lk_scratch_once = PTHREAD_ONCE_INIT;

static void lk_scratch_free(void *p) {
    lk_scratch_t *s = (lk_scratch_t *)p;
    free(s->buf);
    free(s);
}

static void lk_scratch_init(void) { pthread_key_create(&lk_scratch_key, lk_scratch_free); }

static float *lk_scratch(int64_t numel) {
    pthread_once(&lk_scratch_once, lk_scratch_init);
    lk_scratch_t *s = (lk_scratch_t *)pthread_getspecific(lk_scratch_key);
    if (s == NULL) {
        s = (lk_scratch_t *)calloc(1, sizeof *s);
        if (s == NULL || pthread_setspecific(lk_scratch_key, s) != 0) {
            free(s);
            return NULL;
        }
    }
    if (numel > s->cap) {
        /* 64-byte aligned: MKL's GEMM rounds differently at different buffer alignments, and every
         * thread's scratch must give the same bits for results not to depend on the thread count */
        void *pv = NULL;
        if (posix_memalign(&pv, 64, (size_t)numel * sizeof(float)) != 0) return NULL;
        free(s->buf);
        float *p = (float *)pv;
        s->buf = p;
        s->cap = numel;
    }
    return s->buf;
}

/* y[d] = sum_j wts[j] * E_{idx[j]}(x); wts may be NULL (unit weights). Returns 0, or -2 when
 * scratch memory could not be allocated. */
static int lk_decode_experts(const float *x, const float *w1, const float *w2, int64_t d, int64_t m,
                             const int64_t *idx, int64_t k, const float *wts, float *y, int nthreads) {
    const int64_t m2 = 2 * m, r1 = k * d, r2 = k * m;
    if (nthreads < 1) nthreads = 1;
    if (k == 0) {
        memset(y, 0, (size_t)d * sizeof(float));
        return 0;
    }
    const size_t need = (size_t)nthreads * (size_t)(k * m2 + d) + (size_t)r2;
    float *hpart = lk_scratch((int64_t)need); /* this (calling) thread's scratch: reused, no page faults */
    if (hpart == NULL) return -2;
    memset(hpart, 0, need * sizeof(float));
    float *ypart = hpart + (size_t)nthreads * (size_t)(k * m2);
    float *g = ypart + (size_t)nthreads * (size_t)d;
#pragma omp parallel num_threads(nthreads)
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        float *hp = hpart + (size_t)t * (size_t)(k * m2);
        int64_t a = r1 * t / nt, b = r1 * (t + 1) / nt;
        while (a < b) { /* rows a..b-1 of the (expert, input) rows: one expert at a time */
            const int64_t j = a / d, i0 = a % d, i1 = (d < i0 + (b - a)) ? d : i0 + (b - a);
            lk_axpy_rows(hp + j * m2, w1 + (idx[j] * d + i0) * m2, m2, x + i0, i1 - i0, m2);
            a += i1 - i0;
        }
#pragma omp barrier
        /* this thread's (expert, neuron) rows a..b-1: their g from the partial sums (no barrier
         * needed after it: stage 2 reads only these rows) */
        float *yq = ypart + (size_t)t * (size_t)d;
        a = r2 * t / nt;
        b = r2 * (t + 1) / nt;
        for (int64_t e = a; e < b; ++e) {
            const int64_t j = e / m, r = e % m;
            float gate = 0.0f, up = 0.0f;
            for (int s = 0; s < nt; ++s) {
                gate += hpart[((size_t)s * k + j) * m2 + r];
                up += hpart[((size_t)s * k + j) * m2 + m + r];
            }
            const float v = lk_silu(gate) * up;
            g[e] = wts ? v * wts[j] : v;
        }
        while (a < b) { /* rows a..b-1 of the (expert, neuron) rows */
            const int64_t j = a / m, q0 = a % m, q1 = (m < q0 + (b - a)) ? m : q0 + (b - a);
            lk_axpy_rows(yq, w2 + (idx[j] * m + q0) * d, d, g + j * m + q0, q1 - q0, d);
            a += q1 - q0;
        }
#pragma omp barrier
#pragma omp for schedule(static) nowait
        for (int64_t c = 0; c < d; ++c) {
            float s = 0.0f;
            for (int q = 0; q < nt; ++q) s += ypart[(size_t)q * d + c];
            y[c] = s;
        }
    }
    return 0;
}

int lk_moe_decode(const float *x, const float *w1, const float *w2, int64_t d, int64_t m,
                  const int64_t *idx, int64_t k, const float *wts, float *y, int nthreads) {
    return lk_decode_experts(x, w1, w2, d, m, idx, k, wts, y, nthreads);
}

/* One token with its routing done here: logits r = wr x (wr [N, d]); the experts ranked by
 * logit (ties to the lower expert id, as the policies' select_one) and the rule's count k:
 *   kind 0, top-k:  k = kmax;
 *   kind 1, top-p:  k = 1 + #{j : c_j < f32(tau - 1e-7)}, c_j = f32(sum_{i<=j} p_(i)), clamped to
 *                   [kmin, kmax] (TopP.select_one);
 *   kind 2, switch: k = kmin if p_(1) >= f32(tau) else kmax (SwitchK.select_one);
 * with p = softmax(r) rounded to float32 as TopP/SwitchK.select_one compute it (exp and sums in
 * double, stored as float). The chosen experts, sorted by id, get weights 1, or with `softmax`
 * the mean-one renormalised softmax k * exp(r_i) / sum_{j in S} exp(r_j); then
 * lk_decode_experts. `out_idx` (kmax int64, may be NULL) receives the chosen ids.
 * Returns k, or -3 for a bad rule (kind, 1 <= kmin <= kmax <= N <= LK_MAX_EXPERTS), -2 as
 * lk_decode_experts. */
int lk_moe_decode_rule(const float *x, const float *wr, const float *w1, const float *w2, int64_t d, int64_t m,
                       int64_t n_exp, int kind, int64_t kmin, int64_t kmax, double tau, int softmax, float *y,
                       int64_t *out_idx, int nthreads) {
    if (kind < 0 || kind > 2 || kmin < 1 || kmin > kmax || kmax > n_exp || n_exp > LK_MAX_EXPERTS) return -3;
    float logits[LK_MAX_EXPERTS], wts[LK_MAX_EXPERTS];
    int64_t idx[LK_MAX_EXPERTS], order[LK_MAX_EXPERTS];
    unsigned char taken[LK_MAX_EXPERTS];
    for (int64_t e = 0; e < n_exp; ++e) {
        const float *row = wr + e * d;
        float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
        for (int64_t i = 0; i < d; ++i) acc += row[i] * x[i];
        logits[e] = acc;
        taken[e] = 0;
    }
    for (int64_t j = 0; j < kmax; ++j) { /* the kmax largest, in order (ties: lower id first) */
        int64_t best = -1;
        for (int64_t e = 0; e < n_exp; ++e)
            if (!taken[e] && (best < 0 || logits[e] > logits[best])) best = e;
        taken[best] = 1;
        order[j] = best;
    }
    int64_t k = kmax;
    if (kind != 0) {
        const double top = logits[order[0]];
        double sum = 0.0;
        for (int64_t e = 0; e < n_exp; ++e) sum += (double)(float)exp((double)logits[e] - top);
        const double inv = (double)(float)(1.0 / (double)(float)sum); /* p_(1) = f32(1 * inv) = inv */
        if (kind == 2) {
            k = inv >= (double)(float)tau ? kmin : kmax;
        } else {
            const float thresh = (float)(tau - 1e-7);
            double cum = 0.0;
            k = 1;
            for (int64_t j = 0; j + 1 < kmax; ++j) { /* c_j is nondecreasing: count while below */
                cum += (double)(float)((double)(float)exp((double)logits[order[j]] - top) * inv);
                if (!((float)cum < thresh)) break;
                ++k;
            }
            k = k < kmin ? kmin : k;
        }
        for (int64_t j = k; j < kmax; ++j) taken[order[j]] = 0;
    }
    int64_t j = 0;
    for (int64_t e = 0; e < n_exp; ++e)
        if (taken[e]) idx[j++] = e;
    if (softmax) {
        float top = logits[idx[0]], sum = 0.0f;
        for (j = 1; j < k; ++j) top = logits[idx[j]] > top ? logits[idx[j]] : top;
        for (j = 0; j < k; ++j) sum += (wts[j] = expf(logits[idx[j]] - top));
        for (j = 0; j < k; ++j) wts[j] *= (float)k / sum;
    }
    if (out_idx)
        for (j = 0; j < k; ++j) out_idx[j] = idx[j];
    const int rc = lk_decode_experts(x, w1, w2, d, m, idx, k, softmax ? wts : NULL, y, nthreads);
    return rc < 0 ? rc : (int)k;
}

/* Copies `n` floats of row `src` to `dst` (add: dst += src), after prefetching row `next` (may be
 * NULL): gathered and scattered rows are scattered in memory, so the next row's cache misses
 * overlap this row's copy instead of following it. */
static inline void lk_row_copy(float *restrict dst, const float *restrict src, const float *next, int64_t n,
                               int add) {
    if (next)
        for (int64_t q = 0; q < n; q += 16) __builtin_prefetch(next + q, 0, 3);
    if (add) {
#pragma omp simd
        for (int64_t q = 0; q < n; ++q) dst[q] += src[q];
    } else {
        memcpy(dst, src, (size_t)n * sizeof(float));
    }
}

#ifdef __AVX512F__
/* t[r, 0:48] = a_r[0:K] q for 8 rows a_r (pointers; short row groups repeat a row) and a panel q
 * [K][48] (row stride 48): register tiles of 8 rows x 48 columns, per k 3 vector loads of q, 8
 * broadcasts and 24 FMAs. The micro-kernel of both own-layout stages. */
static inline __attribute__((always_inline)) void lk_tile_8x48(const float *const *a, const float *q, int64_t K,
                                                              float t[LK_GU_ROWS][48]) {
    const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3], *a4 = a[4], *a5 = a[5], *a6 = a[6], *a7 = a[7];
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c02 = c00, c10 = c00, c11 = c00, c12 = c00, c20 = c00,
           c21 = c00, c22 = c00, c30 = c00, c31 = c00, c32 = c00, c40 = c00, c41 = c00, c42 = c00, c50 = c00,
           c51 = c00, c52 = c00, c60 = c00, c61 = c00, c62 = c00, c70 = c00, c71 = c00, c72 = c00;
    for (int64_t i = 0; i < K; ++i) {
        const __m512 b0 = _mm512_loadu_ps(q), b1 = _mm512_loadu_ps(q + 16), b2 = _mm512_loadu_ps(q + 32);
        q += 48;
        __m512 v;
#define LK_TILE_ROW(ar, x0, x1, x2)                                                                              \
    v = _mm512_set1_ps(ar[i]);                                                                                  \
    x0 = _mm512_fmadd_ps(v, b0, x0);                                                                            \
    x1 = _mm512_fmadd_ps(v, b1, x1);                                                                            \
    x2 = _mm512_fmadd_ps(v, b2, x2);
        LK_TILE_ROW(a0, c00, c01, c02)
        LK_TILE_ROW(a1, c10, c11, c12)
        LK_TILE_ROW(a2, c20, c21, c22)
        LK_TILE_ROW(a3, c30, c31, c32)
        LK_TILE_ROW(a4, c40, c41, c42)
        LK_TILE_ROW(a5, c50, c51, c52)
        LK_TILE_ROW(a6, c60, c61, c62)
        LK_TILE_ROW(a7, c70, c71, c72)
#undef LK_TILE_ROW
    }
#define LK_TILE_ST(r, x0, x1, x2)                                                                                \
    _mm512_store_ps(t[r], x0);                                                                                  \
    _mm512_store_ps(t[r] + 16, x1);                                                                             \
    _mm512_store_ps(t[r] + 32, x2);
    LK_TILE_ST(0, c00, c01, c02)
    LK_TILE_ST(1, c10, c11, c12)
    LK_TILE_ST(2, c20, c21, c22)
    LK_TILE_ST(3, c30, c31, c32)
    LK_TILE_ST(4, c40, c41, c42)
    LK_TILE_ST(5, c50, c51, c52)
    LK_TILE_ST(6, c60, c61, c62)
    LK_TILE_ST(7, c70, c71, c72)
#undef LK_TILE_ST
}

/* g[r, 0:nn] = (SiLU(a_r Wg) * (a_r Wu)) * sc[r] for the nr <= LK_GU_ROWS token rows a_r (pointers
 * into x: the rows are read where they are, no gather) and one gate/up panel q [d][48] (24 gate
 * then 24 up columns; nn <= 24 neurons kept). */
static void lk_gate_up_8(const float *const *a, int nr, const float *q, int64_t d, int64_t nn, float *g, int64_t ldg,
                         const float *sc) {
    float t[LK_GU_ROWS][48] __attribute__((aligned(64)));
    lk_tile_8x48(a, q, d, t);
    for (int r = 0; r < nr; ++r) {
        float *gr = g + r * ldg;
        const float s = sc ? sc[r] : 1.0f;
#pragma omp simd
        for (int64_t j = 0; j < nn; ++j) gr[j] = lk_silu(t[r][j]) * t[r][LK_GU_NEURONS + j] * s;
    }
}

/* g[r, 0:m] (row stride ldg) for the c tokens tok[0..c-1] of one expert (~t: token t), from x
 * [T, d] and the expert's panels q: panels outer, row groups inner, so that the chunk's rows stay
 * in L2 over the panels and one panel (d x 48 floats) at a time is read by all of its row groups
 * (rather than row groups outer, a group's rows in L1 over all panels: the rows, gate/up panels,
 * h and down panels of a 128-row chunk together take more than a core's L2). */
static void lk_gate_up(const float *x, int64_t d, int64_t m, const int32_t *tok, int c, const float *q, float *g,
                       int64_t ldg, const float *sc) {
    const int64_t np = (m + LK_GU_NEURONS - 1) / LK_GU_NEURONS, panel = d * 2 * LK_GU_NEURONS;
    for (int64_t p = 0; p < np; ++p) {
        const int64_t nn = m - p * LK_GU_NEURONS < LK_GU_NEURONS ? m - p * LK_GU_NEURONS : LK_GU_NEURONS;
        for (int r0 = 0; r0 < c; r0 += LK_GU_ROWS) {
            const int nr = c - r0 < LK_GU_ROWS ? c - r0 : LK_GU_ROWS;
            const float *a[LK_GU_ROWS];
            for (int r = 0; r < LK_GU_ROWS; ++r) {
                const int32_t ta = tok[r0 + (r < nr ? r : 0)];
                a[r] = x + (int64_t)(ta < 0 ? ~ta : ta) * d;
            }
            lk_gate_up_8(a, nr, q + p * panel, d, nn, g + (int64_t)r0 * ldg + p * LK_GU_NEURONS, ldg,
                         sc ? sc + r0 : NULL);
        }
    }
}

/* y_r[0:nd] (+)= g_r W for nr <= 8 rows g_r = g + r * ldg (m values each) and one down panel q
 * [m][48] (nd <= 48 output columns kept): y_r is stored when add[r] is 0, else added to. The rows
 * yn (NULL: none) are prefetched for writing. (The tile is summed from zero, then added to y_r:
 * starting the accumulators from y_r would save a round trip through t, but an item stolen into a
 * buffer is summed from zero, so results would then depend on which thread ran it.) */
static void lk_down_8(const float *g, int64_t ldg, int nr, const float *q, int64_t m, float *const *yr,
                      const uint8_t *add, float *const *yn, int64_t nd) {
    const float *a[LK_GU_ROWS];
    for (int r = 0; r < LK_GU_ROWS; ++r) a[r] = g + (r < nr ? r : 0) * ldg;
    if (yn)
        for (int r = 0; r < LK_GU_ROWS; ++r)
            for (int64_t j = 0; j < nd; j += 16) __builtin_prefetch(yn[r] + j, 1, 3);
    float t[LK_GU_ROWS][48] __attribute__((aligned(64)));
    lk_tile_8x48(a, q, m, t);
    const __mmask16 k0 = nd >= 16 ? 0xFFFF : (__mmask16)((1u << nd) - 1),
                    k1 = nd >= 32 ? 0xFFFF : nd <= 16 ? 0 : (__mmask16)((1u << (nd - 16)) - 1),
                    k2 = nd >= 48 ? 0xFFFF : nd <= 32 ? 0 : (__mmask16)((1u << (nd - 32)) - 1);
    for (int r = 0; r < nr; ++r) {
        float *o = yr[r];
        __m512 x0 = _mm512_load_ps(t[r]), x1 = _mm512_load_ps(t[r] + 16), x2 = _mm512_load_ps(t[r] + 32);
        if (add[r]) {
            x0 = _mm512_add_ps(x0, _mm512_maskz_loadu_ps(k0, o));
            x1 = _mm512_add_ps(x1, _mm512_maskz_loadu_ps(k1, o + 16));
            x2 = _mm512_add_ps(x2, _mm512_maskz_loadu_ps(k2, o + 32));
        }
        _mm512_mask_storeu_ps(o, k0, x0);
        _mm512_mask_storeu_ps(o + 16, k1, x1);
        _mm512_mask_storeu_ps(o + 32, k2, x2);
    }
}

/* y[t] (+)= g[r] W2e for the c tokens tok[r] (~t: store, t: add) of one expert: row groups outer,
 * the expert's down panels q ([npd][m][48]) inner (in sets of LK_DN_SET_BYTES), so that each
 * output row is visited once per set rather than once per panel. */
static void lk_down(const float *g, int64_t ldg, int64_t m, const int32_t *tok, int c, const float *q, float *y,
                    int64_t d) {
    const int64_t npd = (d + LK_DN_COLS - 1) / LK_DN_COLS;
    int64_t pstep = LK_DN_SET_BYTES / (m * LK_DN_COLS * (int64_t)sizeof(float));
    pstep = pstep < 1 ? 1 : pstep > npd ? npd : pstep;
    for (int64_t p0 = 0; p0 < npd; p0 += pstep) {
        const int64_t p1 = p0 + pstep < npd ? p0 + pstep : npd;
        for (int r0 = 0; r0 < c; r0 += LK_GU_ROWS) {
            const int nr = c - r0 < LK_GU_ROWS ? c - r0 : LK_GU_ROWS;
            float *yr[LK_GU_ROWS], *yn[LK_GU_ROWS];
            uint8_t add[LK_GU_ROWS];
            for (int r = 0; r < LK_GU_ROWS; ++r) {
                const int32_t ta = tok[r0 + (r < nr ? r : 0)];
                const int32_t tn = tok[r0 + LK_GU_ROWS + r < c ? r0 + LK_GU_ROWS + r : 0];
                yr[r] = y + (int64_t)(ta < 0 ? ~ta : ta) * d;
                yn[r] = y + (int64_t)(tn < 0 ? ~tn : tn) * d;
                add[r] = ta >= 0;
            }
            for (int64_t p = p0; p < p1; ++p) {
                const int64_t nd = d - p * LK_DN_COLS < LK_DN_COLS ? d - p * LK_DN_COLS : LK_DN_COLS;
                float *yp[LK_GU_ROWS], *ynp[LK_GU_ROWS];
                for (int r = 0; r < LK_GU_ROWS; ++r) yp[r] = yr[r] + p * LK_DN_COLS, ynp[r] = yn[r] + p * LK_DN_COLS;
                lk_down_8(g + (int64_t)r0 * ldg, ldg, nr, q + p * m * LK_DN_COLS, m, yp, add,
                          r0 + LK_GU_ROWS < c ? ynp : NULL, nd);
            }
        }
    }
}
#endif

/* One work item of a token block: the c tokens tok[0..c-1] of expert e (global token ids; ~t marks
 * the token's first expert in expert order: its output is stored, later ones are added), weights
 * tw (NULL: 1). The outputs go into y's token rows, or with buf into buf's rows 0..c-1 (stored, row
 * stride d) for the block's owner to add later (lk_prefill_blocks). Scratch: xs [c, d], h [c, 2m],
 * o [c, d] (own layout: h [c, m] only; xs, o unused), loc [c]. A block's items are its experts'
 * tokens in chunks of at most `chunk` rows. */
static void lk_item(const float *x, int64_t d, const float *w1, const float *w2, const lk_packed *pk, int64_t m,
                    int64_t e, const int32_t *tok, int c, const float *tw, float *y, float *buf, float *xs, float *h,
                    float *o, int32_t *loc) {
#ifdef __AVX512F__
    if (pk && pk->own) {
        /* the token rows read in place and the outputs added into theirs: no xs, no o */
        lk_gate_up(x, d, m, tok, c, pk->p1[e], h, m, tw);
        if (buf) {
            for (int r = 0; r < c; ++r) loc[r] = ~r;
            lk_down(h, m, m, loc, c, pk->p2[e], buf, d);
        } else {
            lk_down(h, m, m, tok, c, pk->p2[e], y, d);
        }
        return;
    }
#endif
    (void)loc;
    const int64_t m2 = 2 * m;
    const int Kd = (int)d, N2 = (int)m2, Km = (int)m, Nd = (int)d, M = c;
    const float one = 1.0f, zero = 0.0f;
    for (int r = 0; r < c; ++r) {
        const int32_t t = tok[r] < 0 ? ~tok[r] : tok[r];
        const int32_t tn = r + 1 < c ? (tok[r + 1] < 0 ? ~tok[r + 1] : tok[r + 1]) : -1;
        lk_row_copy(xs + (int64_t)r * d, x + (int64_t)t * d, tn < 0 ? NULL : x + (int64_t)tn * d, d, 0);
    }
    /* row-major h[c, 2m] = xs[c, d] @ w1[e][d, 2m], as column-major h^T = w1^T xs^T */
    if (pk)
        lk_compute(LK_ROW_MAJOR, LK_NO_TRANS, LK_PACKED, M, N2, Kd, xs, Kd, pk->p1[e], N2, 0.0f, h, N2);
    else
        lk_sgemm("N", "N", &N2, &M, &Kd, &one, w1 + e * d * m2, &N2, xs, &Kd, &zero, h, &N2);
    for (int r = 0; r < c; ++r) {
        float *hr = h + (int64_t)r * m2;
        const float sc = tw ? tw[r] : 1.0f;
#pragma omp simd
        for (int64_t q = 0; q < m; ++q) hr[q] = lk_silu(hr[q]) * hr[m + q] * sc;
    }
    /* out[c, d] = g[c, m] (row stride 2m) @ w2[e][m, d] into this thread's aligned o, then added
     * into y, or copied to buf (a stolen item's rows in the owner's buffer): a GEMM straight into buf
     * would run at buf's alignment and round differently from the owner's own items */
    float *out = o;
    if (pk)
        lk_compute(LK_ROW_MAJOR, LK_NO_TRANS, LK_PACKED, M, Nd, Km, h, N2, pk->p2[e], Nd, 0.0f, out, Nd);
    else
        lk_sgemm("N", "N", &Nd, &M, &Km, &one, w2 + e * m * d, &Nd, h, &N2, &zero, out, &Nd);
    if (buf) {
        memcpy(buf, o, (size_t)c * (size_t)d * sizeof(float));
        return;
    }
    for (int r = 0; r < c; ++r) {
        const int32_t t = tok[r] < 0 ? ~tok[r] : tok[r];
        const int32_t tn = r + 1 < c ? (tok[r + 1] < 0 ? ~tok[r + 1] : tok[r + 1]) : -1;
        lk_row_copy(y + (int64_t)t * d, o + (int64_t)r * d, tn < 0 ? NULL : y + (int64_t)tn * d, d, tok[r] >= 0);
    }
}

/* A token block's work items, shared by its owner (which takes them from the front) and threads
 * that have finished their own blocks (which take them from the back: work stealing). */
typedef struct {
    const int32_t *lists, *items, *rfe; /* items[3i..3i+2]: expert, first row, rows; rfe[i]: rows of items i.. */
    const float *lw;
    float *buf;            /* the outputs of stolen items: item i in rows rfe[i + 1] .. rfe[i] - 1 */
    int64_t cap;           /* rows of buf */
    uint64_t claim;        /* (next item from the front) << 32 | (one past the last unclaimed one) */
    int64_t stolen_done;   /* stolen items finished */
    int state;             /* 0: being routed, 1: items open, 2: done */
} lk_task;

/* The next unclaimed item of tk, from the front or (back) from the back; -1 when none is left, or
 * when the back one's outputs would not fit the owner's buffer. */
static int64_t lk_claim(lk_task *tk, int back) {
    uint64_t c = __atomic_load_n(&tk->claim, __ATOMIC_ACQUIRE);
    for (;;) {
        const uint64_t lo = c >> 32, hi = c & 0xffffffffu;
        if (lo >= hi || (back && tk->rfe[hi - 1] > tk->cap)) return -1;
        const uint64_t nc = back ? (lo << 32 | (hi - 1)) : ((lo + 1) << 32 | hi);
        if (__atomic_compare_exchange_n(&tk->claim, &c, nc, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            return (int64_t)(back ? hi - 1 : lo);
    }
}

static int64_t lk_stolen; /* items taken by a thread other than their block's owner, since load */

/* How many work items threads have taken from other threads' blocks since the library was loaded
 * (a diagnostic: which thread ran an item does not change the results). */
int64_t lk_stolen_items(void) { return __atomic_load_n(&lk_stolen, __ATOMIC_RELAXED); }

/* One step of a wait: a pause instruction, or after 1000 of them (tens of microseconds; an item
 * takes longer) a sched_yield, in case the thread waited for has lost its core (more threads than
 * cores). */
static inline void lk_relax(int *spins) {
    if (++*spins > 1000) {
        sched_yield();
        return;
    }
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Shared driver of the two prefill entry points: tokens in blocks, one block per task, with
 * `route` filling the block's lists. route_scratch extra floats per thread are passed to it.
 *
 * A block's owner routes it, then runs its work items (lk_item) from the front. A thread that has
 * no block left takes items from the back of blocks still running and writes their outputs into
 * the owner's buffer (LK_STEAL_BYTES; items that would not fit are left to the owner); the owner,
 * once the two ends meet, waits for those items and adds their outputs in item order. Every
 * token's expert outputs are thus summed in expert order whoever ran them: results are
 * bit-identical to a single thread's. (The threads of a call often run at different speeds on a
 * VM: with one block per thread, one would otherwise wait for the other at the end.) */
typedef void (*lk_route_fn)(const void *ctx, int64_t t0, int64_t t1, int32_t *lists, float *lw, int32_t *cnt,
                            int64_t stride, float *extra);

static int lk_prefill_blocks(const float *x, int64_t T, int64_t d, const float *w1, const float *w2,
                             const void *packed, int64_t n_exp, int64_t m, lk_route_fn route, const void *ctx,
                             int weighted, int64_t route_scratch, float *y, int64_t block, int64_t chunk,
                             int nthreads) {
    if (lk_sgemm == NULL) return -1;
    const lk_packed *pk = (const lk_packed *)packed;
    if (pk && (pk->n_exp != n_exp || pk->d != d || pk->m != m)) return -4;
    if (pk && !lk_pack_check(pk, w1, w2)) return -5; /* weights edited since packing: the caller repacks */
    if (chunk < 1) chunk = 1;
    if (pk && chunk > pk->rows) chunk = pk->rows; /* GEMMs of at most the rows it was packed for */
    if (nthreads < 1) nthreads = 1;
    if (block < 1) block = 1;
    const int64_t m2 = 2 * m, nblocks = (T + block - 1) / block;
    const int64_t rows = chunk < block ? chunk : block;
    const int own = pk && pk->own;
    const int64_t exp_scratch = own ? rows * m : rows * (2 * d + m2);
    const int64_t max_items = n_exp * ((block + rows - 1) / rows);
    int64_t cap = LK_STEAL_BYTES / (d * (int64_t)sizeof(float));
    cap = nthreads > 1 ? (cap < block * n_exp ? cap : block * n_exp) : 0;
    lk_task *tasks = (lk_task *)calloc((size_t)(nblocks > 0 ? nblocks : 1), sizeof(lk_task)); /* T = 0: none */
    if (tasks == NULL) return -2;
    int failed = 0;
#pragma omp parallel num_threads(nthreads)
    {
        const int old = lk_blas_local_threads ? lk_blas_local_threads(1) : 0;
        float *ws = lk_scratch(exp_scratch + 2 * n_exp * block + n_exp + route_scratch + (block + 3) / 4 +
                               4 * max_items + 1 + rows + cap * d);
        if (ws == NULL) {
#pragma omp atomic write
            failed = 1;
        }
        /* the experts' scratch: gathered rows [rows, d], h [rows, 2m], out [rows, d] (own layout: h
         * [rows, m] only); token lists and weights [N, block], counters [N], the router's scratch,
         * a flag per token of the block, the work items, their row counts, loc [rows], the buffer
         * for stolen items' outputs [cap, d] */
        float *xs = own || !ws ? NULL : ws, *h = own ? ws : (ws ? xs + rows * d : NULL);
        float *o = own || !ws ? NULL : h + rows * m2, *lw = ws ? ws + exp_scratch : NULL;
        int32_t *lists = ws ? (int32_t *)(lw + n_exp * block) : NULL;
        int32_t *cnt = ws ? lists + n_exp * block : NULL;
        float *extra = ws ? (float *)(cnt + n_exp) : NULL;
        uint8_t *hit = ws ? (uint8_t *)(extra + route_scratch) : NULL;
        int32_t *items = ws ? (int32_t *)(extra + route_scratch + (block + 3) / 4) : NULL;
        int32_t *rfe = ws ? items + 3 * max_items : NULL;
        int32_t *loc = ws ? rfe + max_items + 1 : NULL;
        float *buf = ws ? (float *)(loc + rows) : NULL;
#pragma omp for schedule(dynamic, 1) nowait
        for (int64_t bi = 0; bi < nblocks; ++bi) {
            lk_task *tk = &tasks[bi];
            if (ws == NULL) {
                __atomic_store_n(&tk->state, 2, __ATOMIC_RELEASE);
                continue;
            }
            const int64_t t0 = bi * block, t1 = (t0 + block < T) ? t0 + block : T;
            memset(cnt, 0, (size_t)n_exp * sizeof(int32_t));
            route(ctx, t0, t1, lists, weighted ? lw : NULL, cnt, block, extra);
            /* mark each token's first expert (it stores instead of adding: no zeroing pass over y);
             * zero the rows of tokens without any expert */
            memset(hit, 0, (size_t)(t1 - t0));
            for (int64_t e = 0; e < n_exp; ++e)
                for (int32_t r = 0; r < cnt[e]; ++r) {
                    int32_t *tok = lists + e * block + r;
                    if (!hit[*tok - t0]) {
                        hit[*tok - t0] = 1;
                        *tok = ~*tok;
                    }
                }
            for (int64_t t = t0; t < t1; ++t)
                if (!hit[t - t0]) memset(y + t * d, 0, (size_t)d * sizeof(float));
            /* work items in expert order (chunks of at most `rows` tokens) */
            int64_t ni = 0;
            for (int64_t e = 0; e < n_exp; ++e)
                for (int32_t c0 = 0; c0 < cnt[e]; c0 += (int32_t)rows, ++ni) {
                    items[3 * ni] = (int32_t)e, items[3 * ni + 1] = c0;
                    items[3 * ni + 2] = cnt[e] - c0 < rows ? cnt[e] - c0 : (int32_t)rows;
                }
            rfe[ni] = 0;
            for (int64_t i = ni - 1; i >= 0; --i) rfe[i] = rfe[i + 1] + items[3 * i + 2];
            tk->lists = lists, tk->items = items, tk->rfe = rfe, tk->lw = weighted ? lw : NULL;
            tk->buf = buf, tk->cap = cap, tk->claim = (uint64_t)ni, tk->stolen_done = 0;
            __atomic_store_n(&tk->state, 1, __ATOMIC_RELEASE);
            for (int64_t i; (i = lk_claim(tk, 0)) >= 0;) {
                const int32_t e = items[3 * i], c0 = items[3 * i + 1];
                lk_item(x, d, w1, w2, pk, m, e, lists + e * block + c0, items[3 * i + 2],
                        weighted ? lw + e * block + c0 : NULL, y, NULL, xs, h, o, loc);
            }
            /* items taken by other threads: wait for them, then add their outputs in item order (the
             * same order of additions as without stealing) */
            const int64_t hi = (int64_t)(__atomic_load_n(&tk->claim, __ATOMIC_ACQUIRE) & 0xffffffffu);
            for (int spins = 0; __atomic_load_n(&tk->stolen_done, __ATOMIC_ACQUIRE) < ni - hi;) lk_relax(&spins);
            for (int64_t i = hi; i < ni; ++i) {
                const int32_t e = items[3 * i], c0 = items[3 * i + 1], c = items[3 * i + 2];
                const int32_t *tok = lists + e * block + c0;
                const float *src = buf + (int64_t)rfe[i + 1] * d;
                for (int32_t r = 0; r < c; ++r) {
                    const int32_t t = tok[r] < 0 ? ~tok[r] : tok[r];
                    lk_row_copy(y + (int64_t)t * d, src + (int64_t)r * d, NULL, d, tok[r] >= 0);
                }
            }
            __atomic_store_n(&tk->state, 2, __ATOMIC_RELEASE);
        }
        /* then take items from the end of blocks still running */
        for (int spins = 0; ws != NULL && cap > 0;) {
            int open = 0, took = 0;
            for (int64_t b = 0; b < nblocks && !took; ++b) {
                lk_task *tk = &tasks[b];
                const int st = __atomic_load_n(&tk->state, __ATOMIC_ACQUIRE);
                open |= st == 0;
                if (st != 1) continue;
                const int64_t i = lk_claim(tk, 1);
                if (i < 0) continue;
                const int32_t e = tk->items[3 * i], c0 = tk->items[3 * i + 1];
                lk_item(x, d, w1, w2, pk, m, e, tk->lists + e * block + c0, tk->items[3 * i + 2],
                        tk->lw ? tk->lw + e * block + c0 : NULL, y, tk->buf + (int64_t)tk->rfe[i + 1] * d, xs, h, o,
                        loc);
                __atomic_fetch_add(&tk->stolen_done, 1, __ATOMIC_RELEASE);
                __atomic_fetch_add(&lk_stolen, 1, __ATOMIC_RELAXED);
                took = 1;
            }
            if (!took && !open) break;
            if (took)
                spins = 0;
            else
                lk_relax(&spins);
        }
        if (lk_blas_local_threads) lk_blas_local_threads(old);
    }
    free(tasks);
    return failed ? -2 : 0;
}

typedef struct {
    const uint8_t *mask;
    const float *wts;
    int64_t n_exp;
} lk_mask_ctx;

static void lk_route_mask(const void *ctx_, int64_t t0, int64_t t1, int32_t *lists, float *lw, int32_t *cnt,
                          int64_t stride, float *extra) {
    (void)extra;
    const lk_mask_ctx *ctx = (const lk_mask_ctx *)ctx_;
    const int64_t n_exp = ctx->n_exp;
    for (int64_t t = t0; t < t1; ++t) {
        const uint8_t *row = ctx->mask + t * n_exp;
        for (int64_t e = 0; e < n_exp; ++e) { /* written always, kept when selected: no branch */
            if (lw) lw[e * stride + cnt[e]] = ctx->wts[t * n_exp + e];
            lists[e * stride + cnt[e]] = (int32_t)t;
            cnt[e] += row[e] != 0;
        }
    }
}

/* y[T, d] = sum_e mask[t, e] * wts[t, e] * E_e(x[t]); mask is uint8 [T, N] (a torch bool
 * tensor), wts float [T, N] or NULL (unit weights). Tokens are processed in blocks of `block`
 * rows, at most `chunk` rows per GEMM. `packed` (NULL: plain sgemm) is lk_pack_experts(w1, w2, ...)
 * of these same weights; GEMMs then have at most its `rows` rows. Returns 0; -1 when no BLAS was
 * registered; -4 when `packed` is of another shape; -5 when its sampled weights (lk_pack_check)
 * no longer equal w1, w2 (nothing is computed); -2 when scratch memory failed. */
int lk_moe_prefill(const float *x, int64_t T, int64_t d, const float *w1, const float *w2, const void *packed,
                   int64_t n_exp, int64_t m, const uint8_t *mask, const float *wts, float *y,
                   int64_t block, int64_t chunk, int nthreads) {
    const lk_mask_ctx ctx = {mask, wts, n_exp};
    return lk_prefill_blocks(x, T, d, w1, w2, packed, n_exp, m, lk_route_mask, &ctx, wts != NULL, 0, y, block, chunk,
                             nthreads);
}

typedef struct {
    const float *x, *wrt; /* wrt: the router transposed, [d, n16], columns >= N zero */
    int64_t d, n_exp, n16, k;
    int softmax;
} lk_topk_ctx;

/* Router logits out[t, 0..n16) = x[t] wrt for t < B (x [B, d], wrt [d, n16], n16 a multiple of 16):
 * tiles of 8 tokens x 16 experts kept in registers (the full-tile loop has a constant trip count
 * for that; the tail loop does not). About as fast as MKL's sgemm for the same logits, with no
 * BLAS call. */
static void lk_logits(const float *x, int64_t B, int64_t d, const float *wrt, int64_t n16, float *out) {
    enum { LT = 8, PF_EVERY = 64 / (LT * (int)sizeof(float)) }; /* steps per 64-byte line of the next tile */
    _Static_assert(LT * sizeof(float) <= 64 && 64 % (LT * sizeof(float)) == 0,
                   "LT floats must divide a 64-byte line (one prefetch every PF_EVERY steps)");
    for (int64_t t0 = 0; t0 < B; t0 += LT) {
        const int64_t nt = B - t0 < LT ? B - t0 : LT;
        const float *xt = x + t0 * d;
        for (int64_t e0 = 0; e0 < n16; e0 += 16) {
            float acc[LT][16];
            memset(acc, 0, sizeof acc);
            if (nt == LT) {
                /* the next tile's rows (contiguous, LT * d floats: a line every PF_EVERY steps) are prefetched
                 * while this one runs: in the routing pass x comes from memory */
                const char *pf = (const char *)(xt + LT * d);
                const int pf_on = e0 == 0 && t0 + 2 * LT <= B;
                for (int64_t i = 0; i < d; ++i) {
                    if (pf_on && i % PF_EVERY == 0) __builtin_prefetch(pf + LT * (int64_t)sizeof(float) * i, 0, 3);
                    const float *w = wrt + i * n16 + e0;
                    for (int j = 0; j < LT; ++j) {
                        const float a = xt[j * d + i];
#pragma omp simd
                        for (int l = 0; l < 16; ++l) acc[j][l] += a * w[l];
                    }
                }
            } else {
                for (int64_t i = 0; i < d; ++i) {
                    const float *w = wrt + i * n16 + e0;
                    for (int64_t j = 0; j < nt; ++j) {
                        const float a = xt[j * d + i];
#pragma omp simd
                        for (int l = 0; l < 16; ++l) acc[j][l] += a * w[l];
                    }
                }
            }
            for (int64_t j = 0; j < nt; ++j) memcpy(out + (t0 + j) * n16 + e0, acc[j], sizeof acc[j]);
        }
    }
}

/* Router logits of the block (lk_logits), then the k largest per token (ties to the lower id), in
 * expert order, with unit or renormalised-softmax weights. */
static void lk_route_topk(const void *ctx_, int64_t t0, int64_t t1, int32_t *lists, float *lw, int32_t *cnt,
                          int64_t stride, float *logits) {
    const lk_topk_ctx *ctx = (const lk_topk_ctx *)ctx_;
    const int64_t n_exp = ctx->n_exp, k = ctx->k, d = ctx->d, n16 = ctx->n16;
    lk_logits(ctx->x + t0 * d, t1 - t0, d, ctx->wrt, n16, logits);
    unsigned char taken[LK_MAX_EXPERTS];
    float w[LK_MAX_EXPERTS];
    for (int64_t t = t0; t < t1; ++t) {
        const float *lg = logits + (t - t0) * n16;
        int64_t chosen = 0;
#ifdef __AVX512F__
        if (n_exp <= 16) {
            /* the same ranks from two compares of all the token's logits and a popcount: gcc runs the
             * loop below for N < 16 as scalar code (its vector body wants 16 experts) */
            const __mmask16 valid = (__mmask16)((1u << n_exp) - 1);
            const __m512 all = _mm512_maskz_loadu_ps(valid, lg);
            for (int64_t e = 0; e < n_exp; ++e) {
                const __m512 v = _mm512_set1_ps(lg[e]);
                const __mmask16 ahead = _mm512_mask_cmp_ps_mask(valid, all, v, _CMP_GT_OQ) |
                                        _mm512_mask_cmp_ps_mask((__mmask16)((1u << e) - 1), all, v, _CMP_EQ_OQ);
                chosen += (taken[e] = __builtin_popcount(ahead) < k);
            }
        } else
#endif
        if (n_exp <= 64) { /* by rank, without branches: e's rank counts the experts ahead of it */
            for (int64_t e = 0; e < n_exp; ++e) {
                const float v = lg[e];
                int rank = 0;
#pragma omp simd reduction(+ : rank)
                for (int64_t f = 0; f < n_exp; ++f) rank += (lg[f] > v) | ((lg[f] == v) & (f < e));
                chosen += (taken[e] = rank < k);
            }
        }
        if (chosen != k) { /* many experts, or NaN logits (no total order): k passes */
            memset(taken, 0, (size_t)n_exp);
            for (int64_t j = 0; j < k; ++j) {
                int64_t best = -1;
                for (int64_t e = 0; e < n_exp; ++e)
                    if (!taken[e] && (best < 0 || lg[e] > lg[best])) best = e;
                if (best < 0) break;
                taken[best] = 1;
            }
        }
        if (ctx->softmax) {
            float top = -INFINITY, sum = 0.0f;
            for (int64_t e = 0; e < n_exp; ++e)
                if (taken[e] && lg[e] > top) top = lg[e];
            for (int64_t e = 0; e < n_exp; ++e)
                if (taken[e]) sum += (w[e] = expf(lg[e] - top));
            for (int64_t e = 0; e < n_exp; ++e)
                if (taken[e]) w[e] *= (float)k / sum;
        }
        for (int64_t e = 0; e < n_exp; ++e) { /* written always, kept when taken: no branch */
            if (lw) lw[e * stride + cnt[e]] = taken[e] ? w[e] : 0.0f;
            lists[e * stride + cnt[e]] = (int32_t)t;
            cnt[e] += taken[e];
        }
    }
}

/* Top-k prefill, router included (wr [N, d]): as lk_moe_decode_rule's top-k for every token of x [T, d].
 * Returns 0, -1 (no BLAS), -2 (scratch memory), -3 (k or N out of range), -4 (`packed` shape) or -5
 * (`packed` stale, as lk_moe_prefill). */
int lk_moe_prefill_topk(const float *x, int64_t T, int64_t d, const float *wr, const float *w1, const float *w2,
                        const void *packed, int64_t n_exp, int64_t m, int64_t k, int softmax, float *y, int64_t block,
                        int64_t chunk, int nthreads) {
    if (k < 1 || k > n_exp || n_exp > LK_MAX_EXPERTS) return -3;
    const int64_t n16 = (n_exp + 15) / 16 * 16;
    float *wrt = (float *)calloc((size_t)(d * n16), sizeof(float));
    if (wrt == NULL) return -2;
    for (int64_t e = 0; e < n_exp; ++e)
        for (int64_t i = 0; i < d; ++i) wrt[i * n16 + e] = wr[e * d + i];
    const lk_topk_ctx ctx = {x, wrt, d, n_exp, n16, k, softmax};
    const int64_t b = block < 1 ? 1 : block;
    const int rc = lk_prefill_blocks(x, T, d, w1, w2, packed, n_exp, m, lk_route_topk, &ctx, softmax, b * n16, y,
                                     block, chunk, nthreads);
    free(wrt);
    return rc;
}

/* Fused LIF forward and backward over all time steps, for float32 tensors on the CPU,
 * optionally fused with the 2x2 max pooling that follows a layer.
 *
 * The same equations as dietsnn/quant/lif.py (LIFFunction) and F.max_pool2d, evaluated in one
 * pass over memory: the N neurons of a step are cut into units (cache-sized blocks, or pairs
 * of image rows when pooling); each thread walks its units and carries the membrane
 * (forward) or its gradient (backward) across the T steps in unit-local buffers. Plain C99 +
 * OpenMP, built on first use by dietsnn.quant.kernel. It links libgomp by its soname, so in a
 * process where PyTorch has loaded its own libgomp.so.1 it runs on PyTorch's thread pool: no
 * second set of threads spinning against the first (on two cores that halves the speed).
 *
 * Forward, per neuron (all values integers in quantised mode, so float32 is exact):
 *
 *     A_t = U_{t-1} - floor(U_{t-1} * m)   (quantised: m = 2^-k, m = 0 for no leak)
 *     A_t = lam * U_{t-1}                  (float)
 *     P_t = clamp(A_t + I_t, lo, hi)       (lo, hi = -inf, +inf when unbounded)
 *     s_t = [P_t > theta],  U_t = P_t - theta * s_t,  U_{-1} = 0
 *
 * Pooling (channels-last [.., H, W, C], H and W even): y = max of each 2x2 window; its
 * gradient goes to the first maximum in the order (0,0), (0,1), (1,0), (1,1), as PyTorch's.
 *
 * Backward (surrogate z = P/theta - 1, ds/dP = 0.3 max(0, 1 - |z|) / theta):
 *
 *     gs_t  = 0.3 max(0, 1 - |P_t/theta - 1|) * dL/ds_t
 *     gP_t  = gU_t + gs_t / theta,                gU_t = lam * gP_{t+1}  (gU_{T-1} = 0)
 *     dL/dtheta = -sum_t [ gU_t s_t + gs_t P_t / theta^2 ]
 *     dL/dlam   =  sum_{t>0} gP_t (P_{t-1} - theta s_{t-1})
 *
 * Only P is saved; spikes are recomputed from it in the backward pass (s_t = [P_t > theta]).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(_OPENMP)
#include <omp.h>
#endif

#define BLOCK 1024
#define ALPHA 0.3f

typedef struct {
    const float *cur;   /* forward: [T or 1][N] */
    float *out;         /* forward: spikes [T][N], or pooled spikes [T][N/4] */
    float *pre;         /* forward: saved P [T][N] */
    const float *saved; /* backward: P [T][N] */
    const float *grad;  /* backward: dL/d(out) */
    float *gcur;        /* backward: dL/dI [T][N], or [N] when static */
    int64_t t_steps, n, unit;
    int64_t row, chan;  /* pooling: row = W*C and chan = C; row = 0: no pooling */
    int is_static, quant;
    float theta, leak, lo, hi;
} Job;

/* One time step of one unit; the flags are compile-time constants at every call site, so
 * each variant becomes its own branch-free, vectorised loop. */
static inline __attribute__((always_inline)) void forward_step(
        const float *restrict c, float *restrict p, float *restrict s, float *restrict u,
        int64_t len, const int first, const int quant, float th, float m, float lo, float hi) {
#pragma omp simd
    for (int64_t i = 0; i < len; i++) {
        float a;
        if (first) a = c[i];
        else if (quant) a = (u[i] - floorf(u[i] * m)) + c[i];
        else a = c[i] + m * u[i];
        a = a < lo ? lo : a;
        a = a > hi ? hi : a;
        const float sp = a > th ? 1.0f : 0.0f;
        p[i] = a;
        s[i] = sp;
        u[i] = a - th * sp;
    }
}

/* 2x2 max pooling of one pair of rows s[2][W][C] (row = W*C) into y[W/2][C]. */
static void pool_rows(const float *restrict s, float *restrict y, int64_t row, int64_t c) {
    const int64_t half = row / (2 * c);
    for (int64_t j = 0; j < half; j++) {
        const float *a = s + 2 * j * c, *b = a + c, *d = a + row, *e = d + c;
        float *o = y + j * c;
#pragma omp simd
        for (int64_t k = 0; k < c; k++) {
            const float ab = a[k] > b[k] ? a[k] : b[k];
            const float de = d[k] > e[k] ? d[k] : e[k];
            o[k] = ab > de ? ab : de;
        }
    }
}

/* The gradient of pool_rows: g[2][W][C] gets gy at the first maximum of each window of the
 * spikes [P > theta], zero elsewhere. */
static void unpool_rows(const float *restrict p, const float *restrict gy, float *restrict g,
                        int64_t row, int64_t c, float th) {
    const int64_t half = row / (2 * c);
    for (int64_t j = 0; j < half; j++) {
        const float *pa = p + 2 * j * c, *pb = pa + c, *pd = pa + row, *pe = pd + c;
        float *ga = g + 2 * j * c, *gb = ga + c, *gd = ga + row, *ge = gd + c;
        const float *y = gy + j * c;
#pragma omp simd
        for (int64_t k = 0; k < c; k++) {
            const int sa = pa[k] > th, sb = pb[k] > th, sd = pd[k] > th, se = pe[k] > th;
            const int take_b = !sa && sb, take_d = !sa && !sb && sd;
            const int take_e = !sa && !sb && !sd && se;
            const int take_a = !take_b && !take_d && !take_e;
            ga[k] = take_a ? y[k] : 0.0f;
            gb[k] = take_b ? y[k] : 0.0f;
            gd[k] = take_d ? y[k] : 0.0f;
            ge[k] = take_e ? y[k] : 0.0f;
        }
    }
}

static void forward_unit(const Job *j, int64_t k, float *u, float *sbuf) {
    const int64_t N = j->n, T = j->t_steps;
    const float th = j->theta, m = j->leak, lo = j->lo, hi = j->hi;
    {
        const int64_t b0 = k * j->unit;
        const int64_t len = N - b0 < j->unit ? N - b0 : j->unit;
        for (int64_t t = 0; t < T; t++) {
            const float *c = j->cur + (j->is_static ? 0 : t * N) + b0;
            float *s = j->row ? sbuf : j->out + t * N + b0;
            float *p = j->pre + t * N + b0;
            if (t == 0) forward_step(c, p, s, u, len, 1, 0, th, m, lo, hi);
            else if (j->quant) forward_step(c, p, s, u, len, 0, 1, th, m, lo, hi);
            else forward_step(c, p, s, u, len, 0, 0, th, m, lo, hi);
            if (j->row) pool_rows(sbuf, j->out + t * (N / 4) + b0 / 4, j->row, j->chan);
        }
    }
}

static inline __attribute__((always_inline)) void backward_step(
        const float *restrict p, const float *restrict g, const float *restrict pp,
        float *restrict out, float *restrict gu, int64_t len, const int first,
        const int has_prev, const int accumulate, float th, float inv, float lam,
        float *gth_acc, float *glam_acc) {
    float gth = 0.0f, glam = 0.0f;
#pragma omp simd reduction(+ : gth, glam)
    for (int64_t i = 0; i < len; i++) {
        const float z = fabsf(p[i] * inv - 1.0f) * -ALPHA + ALPHA;
        const float gs = (z > 0.0f ? z : 0.0f) * g[i];
        float gp = gs * inv;
        if (!first) {
            gp += gu[i];
            gth -= p[i] > th ? gu[i] : 0.0f;
        }
        gth -= gs * p[i] * (inv * inv);
        if (has_prev) glam += gp * (pp[i] - (pp[i] > th ? th : 0.0f));
        gu[i] = gp * lam;
        if (accumulate && !first) out[i] += gp;
        else out[i] = gp;
    }
    *gth_acc += gth;
    *glam_acc += glam;
}

/* Returns this unit's contributions to dL/dtheta and dL/dlam. */
static void backward_unit(const Job *j, int64_t k, float *gu, float *acc, float *gbuf,
                          double *g_theta, double *g_lam) {
    const int64_t N = j->n, T = j->t_steps;
    const float th = j->theta, inv = 1.0f / th, lam = j->leak;
    const int st = j->is_static;
    {
        const int64_t b0 = k * j->unit;
        const int64_t len = N - b0 < j->unit ? N - b0 : j->unit;
        float gth = 0.0f, glam = 0.0f;
        for (int64_t t = T - 1; t >= 0; t--) {
            const float *p = j->saved + t * N + b0;
            const float *pp = t > 0 ? j->saved + (t - 1) * N + b0 : p;
            const float *g = j->grad + t * N + b0;
            if (j->row) {
                unpool_rows(p, j->grad + t * (N / 4) + b0 / 4, gbuf, j->row, j->chan, th);
                g = gbuf;
            }
            float *out = st ? acc : j->gcur + t * N + b0;
            const int first = t == T - 1, prev = t > 0;
#define STEP(F, P, A) backward_step(p, g, pp, out, gu, len, F, P, A, th, inv, lam, &gth, &glam)
            if (st) {
                if (first && prev) STEP(1, 1, 1);
                else if (first) STEP(1, 0, 1);
                else if (prev) STEP(0, 1, 1);
                else STEP(0, 0, 1);
            } else {
                if (first && prev) STEP(1, 1, 0);
                else if (first) STEP(1, 0, 0);
                else if (prev) STEP(0, 1, 0);
                else STEP(0, 0, 0);
            }
#undef STEP
        }
        if (st) memcpy(j->gcur + b0, acc, (size_t)len * sizeof(float));
        *g_theta = gth;
        *g_lam = glam;
    }
}

/* Run every unit on `threads` threads, each with three unit-sized buffers from one
 * allocation. The units are dealt out statically and each thread's dL/dtheta, dL/dlam
 * partial sums are added in thread order, so a given thread count always gives the same bits.
 * Returns 0, or -1 when the buffers could not be allocated. */
static int run(const Job *j, int threads, int backward, double *g_theta, double *g_lam) {
    const int64_t units = (j->n + j->unit - 1) / j->unit;
    if (threads > units) threads = (int)units;
    if (threads < 1) threads = 1;
    float *buf = malloc((size_t)threads * 3 * (size_t)j->unit * sizeof(float));
    double *part = calloc((size_t)threads * 2, sizeof(double));
    if (!buf || !part) {
        free(buf);
        free(part);
        return -1;
    }
#pragma omp parallel num_threads(threads)
    {
        int me = 0, nt = 1;
#if defined(_OPENMP)
        me = omp_get_thread_num();
        nt = omp_get_num_threads();
#endif
        float *a = buf + (size_t)me * 3 * (size_t)j->unit, *b = a + j->unit, *c = b + j->unit;
        const int64_t per = (units + nt - 1) / nt;
        const int64_t k0 = me * per < units ? me * per : units;
        const int64_t k1 = k0 + per < units ? k0 + per : units;
        for (int64_t k = k0; k < k1; k++) {
            if (backward) {
                double x = 0.0, y = 0.0;
                backward_unit(j, k, a, b, c, &x, &y);
                part[2 * me] += x;
                part[2 * me + 1] += y;
            } else {
                forward_unit(j, k, a, b);
            }
        }
    }
    double gth = 0.0, glam = 0.0;
    for (int k = 0; k < threads; k++) {
        gth += part[2 * k];
        glam += part[2 * k + 1];
    }
    free(buf);
    free(part);
    if (g_theta) *g_theta = gth;
    if (g_lam) *g_lam = glam;
    return 0;
}

/* Geometry: n neurons per step; pooling when row > 0 (channels-last rows of row = W*C
 * floats, chan = C channels, n a multiple of 2*row). */
static void geometry(Job *j, int64_t t_steps, int64_t n, int64_t row, int64_t chan) {
    j->t_steps = t_steps;
    j->n = n;
    j->row = row;
    j->chan = chan;
    j->unit = row ? 2 * row : BLOCK;
}

int dietsnn_lif_forward(const float *cur, float *out, float *pre, int64_t t_steps, int64_t n,
                        int64_t row, int64_t chan, int is_static, int quant, int bounded,
                        float theta, float leak, float lo, float hi, int threads) {
    Job proto;
    memset(&proto, 0, sizeof proto);
    geometry(&proto, t_steps, n, row, chan);
    proto.cur = cur; proto.out = out; proto.pre = pre;
    proto.is_static = is_static; proto.quant = quant;
    proto.theta = theta; proto.leak = leak;
    proto.lo = bounded ? lo : -INFINITY;
    proto.hi = bounded ? hi : INFINITY;
    return run(&proto, threads, 0, NULL, NULL);
}

int dietsnn_lif_backward(const float *pre, const float *grad, float *gcur, int64_t t_steps,
                         int64_t n, int64_t row, int64_t chan, int is_static, float theta,
                         float lam, int threads, double *g_theta, double *g_lam) {
    Job proto;
    memset(&proto, 0, sizeof proto);
    geometry(&proto, t_steps, n, row, chan);
    proto.saved = pre; proto.grad = grad; proto.gcur = gcur;
    proto.is_static = is_static;
    proto.theta = theta; proto.leak = lam;
    return run(&proto, threads, 1, g_theta, g_lam);
}

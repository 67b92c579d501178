// Fused CUDA kernels of the student's training and inference (XLM-R cross-encoder) and of the
// optimizer. Compiled to PTX by build.rs (only with the `cuda` feature) and wrapped as candle
// custom ops in src/kernels/. Conventions:
//  * bf16 is handled as raw 16-bit patterns (round to nearest even), so no CUDA header is needed;
//  * statistics and accumulations are f32;
//  * dropout masks come from a counter-based hash of (seed, element index), so a backward pass
//    regenerates the forward's mask instead of storing it.

#include "common.cuh"

// splitmix64 of (seed, index): 24 uniform bits decide whether an element is kept.
__device__ __forceinline__ float keep_factor(unsigned long long seed, unsigned long long i, float p,
                                             float scale) {
    if (p <= 0.f) return scale;  // uniform across the launch: no divergence
    unsigned long long z = seed + (i + 1ull) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    float u = (float)(unsigned)(z >> 40) * (1.0f / 16777216.0f);
    return u >= p ? scale : 0.0f;
}

#define GRID_STRIDE(i, n) \
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (n); \
         i += (long long)blockDim.x * gridDim.x)

// Rows of width d, a block per row at a time: element i = r * d + c without any division.
#define ROW_LOOP(r, c, i, nrows, d)                                       \
    for (long long r = blockIdx.x; r < (nrows); r += gridDim.x)           \
        for (int c = threadIdx.x; c < (d); c += blockDim.x)               \
            if (long long i = r * (d) + c; true)

// ------------------------------------------------------------------------------- LayerNorm
// One warp per row of D <= 1024 f32 values, held in registers (32 per lane).
#define LN_MAX_PER_LANE 32

// Loads a row into v (lane's elements lane, lane + 32, ...) and computes its mean and
// 1 / sqrt(var + eps) with two passes over the registers (biased variance, as torch).
__device__ __forceinline__ void ln_row_stats(const float* xr, int d, float eps, int lane,
                                             float (&v)[LN_MAX_PER_LANE], float& mean,
                                             float& rstd) {
    float s = 0.f;
#pragma unroll
    for (int k = 0; k < LN_MAX_PER_LANE; k++) {
        int j = lane + 32 * k;
        v[k] = j < d ? xr[j] : 0.f;
        s += v[k];
    }
    mean = warp_sum(s) / d;
    float q = 0.f;
#pragma unroll
    for (int k = 0; k < LN_MAX_PER_LANE; k++) {
        int j = lane + 32 * k;
        float c = j < d ? v[k] - mean : 0.f;
        q += c * c;
    }
    rstd = rsqrtf(warp_sum(q) / d + eps);
}

extern "C" __global__ void ln_fwd_f32(const float* x, const float* g, const float* b, float* y,
                                      int n, int d, float eps) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x & 31;
    if (row >= n) return;
    float v[LN_MAX_PER_LANE];
    float mean, rstd;
    ln_row_stats(x + (long long)row * d, d, eps, lane, v, mean, rstd);
    float* yr = y + (long long)row * d;
#pragma unroll
    for (int k = 0; k < LN_MAX_PER_LANE; k++) {
        int j = lane + 32 * k;
        if (j < d) yr[j] = (v[k] - mean) * rstd * g[j] + b[j];
    }
}

// dx of LayerNorm; also writes each row's (mean, rstd) to stats for ln_bwd_weights_f32.
extern "C" __global__ void ln_bwd_x_f32(const float* x, const float* g, const float* dy, float* dx,
                                        float* stats, int n, int d, float eps) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x & 31;
    if (row >= n) return;
    long long base = (long long)row * d;
    float v[LN_MAX_PER_LANE];
    float mean, rstd;
    ln_row_stats(x + base, d, eps, lane, v, mean, rstd);
    float gd[LN_MAX_PER_LANE];
    float a = 0.f, c = 0.f;
#pragma unroll
    for (int k = 0; k < LN_MAX_PER_LANE; k++) {
        int j = lane + 32 * k;
        v[k] = (v[k] - mean) * rstd;  // xhat
        gd[k] = j < d ? dy[base + j] * g[j] : 0.f;
        a += gd[k];
        c += j < d ? gd[k] * v[k] : 0.f;
    }
    a = warp_sum(a) / d;
    c = warp_sum(c) / d;
#pragma unroll
    for (int k = 0; k < LN_MAX_PER_LANE; k++) {
        int j = lane + 32 * k;
        if (j < d) dx[base + j] = rstd * (gd[k] - a - v[k] * c);
    }
    if (lane == 0) {
        stats[2 * row] = mean;
        stats[2 * row + 1] = rstd;
    }
}

// dgamma (out[0..d]) and dbeta (out[d..2d]): blocks of 32 columns x 32 row groups, reduced in
// shared memory in a fixed order (deterministic).
extern "C" __global__ void ln_bwd_weights_f32(const float* x, const float* dy, const float* stats,
                                              float* out, int n, int d) {
    __shared__ float sg[32][33];
    __shared__ float sb[32][33];
    int j = blockIdx.x * 32 + threadIdx.x;
    float ag = 0.f, ab = 0.f;
    if (j < d) {
        for (int r = threadIdx.y; r < n; r += 32) {
            long long i = (long long)r * d + j;
            float xhat = (x[i] - stats[2 * r]) * stats[2 * r + 1];
            ag += dy[i] * xhat;
            ab += dy[i];
        }
    }
    sg[threadIdx.y][threadIdx.x] = ag;
    sb[threadIdx.y][threadIdx.x] = ab;
    __syncthreads();
    if (threadIdx.y == 0 && j < d) {
        float tg = 0.f, tb = 0.f;
        for (int k = 0; k < 32; k++) {
            tg += sg[k][threadIdx.x];
            tb += sb[k][threadIdx.x];
        }
        out[j] = tg;
        out[d + j] = tb;
    }
}

// ------------------------------------------------------------------------------- column sums
// out[j] = sum over rows of x[r, j] (the gradient of a broadcast bias), f32.
#define COLUMN_SUM(NAME, T)                                                                   \
    extern "C" __global__ void NAME(const T* x, float* out, int n, int d) {                   \
        __shared__ float s[32][33];                                                           \
        int j = blockIdx.x * 32 + threadIdx.x;                                                \
        float acc = 0.f;                                                                      \
        if (j < d)                                                                            \
            for (int r = threadIdx.y; r < n; r += 32) acc += ld(x, (long long)r * d + j);     \
        s[threadIdx.y][threadIdx.x] = acc;                                                    \
        __syncthreads();                                                                      \
        if (threadIdx.y == 0 && j < d) {                                                      \
            float t = 0.f;                                                                    \
            for (int k = 0; k < 32; k++) t += s[k][threadIdx.x];                              \
            out[j] = t;                                                                       \
        }                                                                                     \
    }
COLUMN_SUM(column_sum_f32, float)
COLUMN_SUM(column_sum_bf16, bf16)

// ------------------------------------------------------------------------------- attention
// probs = dropout(softmax(scores * scale + mask[batch])) over the last dim; one warp per row.
// scores: [B, H, Lq, Lk]; mask: [B, Lk] additive f32.
#define ATTN_FWD(NAME, T)                                                                     \
    extern "C" __global__ void NAME(const T* s, const float* mask, T* out, int rows, int lq,  \
                                    int lk, int heads, float scale, float p, float keep_scale, \
                                    unsigned long long seed) {                                \
        int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;                          \
        int lane = threadIdx.x & 31;                                                          \
        if (row >= rows) return;                                                              \
        long long base = (long long)row * lk;                                                 \
        const float* m = mask + (long long)(row / (heads * lq)) * lk;                         \
        float mx = -INFINITY;                                                                 \
        for (int j = lane; j < lk; j += 32) mx = fmaxf(mx, ld(s, base + j) * scale + m[j]);   \
        mx = warp_max(mx);                                                                    \
        float sum = 0.f;                                                                      \
        for (int j = lane; j < lk; j += 32) sum += expf(ld(s, base + j) * scale + m[j] - mx); \
        float inv = 1.f / warp_sum(sum);                                                      \
        for (int j = lane; j < lk; j += 32) {                                                 \
            float y = expf(ld(s, base + j) * scale + m[j] - mx) * inv;                        \
            st(out, base + j, y * keep_factor(seed, base + j, p, keep_scale));                \
        }                                                                                     \
    }
ATTN_FWD(attn_probs_fwd_f32, float)
ATTN_FWD(attn_probs_fwd_bf16, bf16)

// dscores = scale * y * (g - sum(g * y)), g = dprobs * keep; y recomputed from the scores.
#define ATTN_BWD(NAME, T)                                                                     \
    extern "C" __global__ void NAME(const T* s, const float* mask, const T* dout, T* ds,      \
                                    int rows, int lq, int lk, int heads, float scale, float p, \
                                    float keep_scale, unsigned long long seed) {              \
        int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;                          \
        int lane = threadIdx.x & 31;                                                          \
        if (row >= rows) return;                                                              \
        long long base = (long long)row * lk;                                                 \
        const float* m = mask + (long long)(row / (heads * lq)) * lk;                         \
        float mx = -INFINITY;                                                                 \
        for (int j = lane; j < lk; j += 32) mx = fmaxf(mx, ld(s, base + j) * scale + m[j]);   \
        mx = warp_max(mx);                                                                    \
        float sum = 0.f;                                                                      \
        for (int j = lane; j < lk; j += 32) sum += expf(ld(s, base + j) * scale + m[j] - mx); \
        float inv = 1.f / warp_sum(sum);                                                      \
        float dot = 0.f;                                                                      \
        for (int j = lane; j < lk; j += 32) {                                                 \
            float y = expf(ld(s, base + j) * scale + m[j] - mx) * inv;                        \
            dot += ld(dout, base + j) * keep_factor(seed, base + j, p, keep_scale) * y;       \
        }                                                                                     \
        dot = warp_sum(dot);                                                                  \
        for (int j = lane; j < lk; j += 32) {                                                 \
            float y = expf(ld(s, base + j) * scale + m[j] - mx) * inv;                        \
            float g = ld(dout, base + j) * keep_factor(seed, base + j, p, keep_scale);        \
            st(ds, base + j, scale * y * (g - dot));                                          \
        }                                                                                     \
    }
ATTN_BWD(attn_probs_bwd_f32, float)
ATTN_BWD(attn_probs_bwd_bf16, bf16)

// ------------------------------------------------------------------------------- bias + GELU
__device__ __forceinline__ float gelu_erf(float u) { return 0.5f * u * (1.f + erff(u * 0.70710678118654752f)); }
__device__ __forceinline__ float gelu_erf_grad(float u) {
    return 0.5f * (1.f + erff(u * 0.70710678118654752f)) +
           u * 0.39894228040143268f * expf(-0.5f * u * u);
}

#define BIAS_GELU(T, SUFFIX)                                                                   \
    extern "C" __global__ void bias_gelu_fwd_##SUFFIX(const T* x, const float* bias, T* y,     \
                                                     long long n, int d) {                     \
        ROW_LOOP(r, c, i, n / d, d) st(y, i, gelu_erf(ld(x, i) + bias[c]));                    \
    }                                                                                          \
    extern "C" __global__ void bias_gelu_bwd_##SUFFIX(const T* x, const float* bias,           \
                                                     const T* dy, T* dx, long long n, int d) { \
        ROW_LOOP(r, c, i, n / d, d) st(dx, i, ld(dy, i) * gelu_erf_grad(ld(x, i) + bias[c]));  \
    }
BIAS_GELU(float, f32)
BIAS_GELU(bf16, bf16)

// ------------------------------------------------------------- bias + dropout + residual add
// out (f32) = residual + dropout(x + bias)
#define BIAS_DROPOUT_RESIDUAL(T, SUFFIX)                                                       \
    extern "C" __global__ void bias_dropout_residual_##SUFFIX(                                 \
        const T* x, const float* bias, const float* res, float* out, long long n, int d,       \
        float p, float keep_scale, unsigned long long seed) {                                  \
        ROW_LOOP(r, c, i, n / d, d)                                                            \
        out[i] = res[i] + (ld(x, i) + bias[c]) * keep_factor(seed, i, p, keep_scale);          \
    }
BIAS_DROPOUT_RESIDUAL(float, f32)
BIAS_DROPOUT_RESIDUAL(bf16, bf16)

// ------------------------------------------------------------------------------- dropout
// y = x * keep (also the backward, on the gradient, with the same seed); may change the dtype.
#define DROPOUT(NAME, TI, TO)                                                                  \
    extern "C" __global__ void NAME(const TI* x, TO* y, long long n, float p, float keep_scale, \
                                    unsigned long long seed) {                                 \
        GRID_STRIDE(i, n) st(y, i, ld(x, i) * keep_factor(seed, i, p, keep_scale));            \
    }
DROPOUT(dropout_f32_f32, float, float)
DROPOUT(dropout_bf16_bf16, bf16, bf16)
DROPOUT(dropout_f32_bf16, float, bf16)

// ------------------------------------------------------------------------- attention heads
// [B*L, H*Dh] + bias (may be null) -> [B, H, L, Dh] (split) and back (merge, no bias).
#define HEADS(T, SUFFIX)                                                                       \
    extern "C" __global__ void head_split_bias_##SUFFIX(const T* x, const float* bias, T* out, \
                                                       int b, int l, int h, int dh) {         \
        int d = h * dh;                                                                        \
        ROW_LOOP(bl, c, i, (long long)b * l, d) {                                              \
            int hh = c / dh, dd = c - hh * dh;                                                 \
            long long bb = bl / l, ll = bl - bb * l;                                           \
            st(out, ((bb * h + hh) * l + ll) * dh + dd, ld(x, i) + (bias ? bias[c] : 0.f));    \
        }                                                                                      \
    }                                                                                          \
    extern "C" __global__ void head_merge_##SUFFIX(const T* x, T* out, int b, int l, int h,    \
                                                  int dh) {                                    \
        int d = h * dh;                                                                        \
        ROW_LOOP(bl, c, i, (long long)b * l, d) {                                              \
            int hh = c / dh, dd = c - hh * dh;                                                 \
            long long bb = bl / l, ll = bl - bb * l;                                           \
            out[i] = x[((bb * h + hh) * l + ll) * dh + dd];                                    \
        }                                                                                      \
    }
HEADS(float, f32)
HEADS(bf16, bf16)

// ------------------------------------------------------------------------------- AdamW
// Multi-tensor torch AdamW (and the squared gradient norm) in one launch. meta holds 8 u64 per
// tensor: param, grad, exp_avg, exp_avg_sq pointers (f32), element count, first chunk index,
// the decay factor (1 - lr * weight_decay) as f32 bits, unused.
#define ADAM_CHUNK 8192
#define META 8

__device__ __forceinline__ int find_tensor(const unsigned long long* meta, int nt, long long blk) {
    int lo = 0, hi = nt - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if ((long long)meta[mid * META + 5] <= blk) lo = mid; else hi = mid - 1;
    }
    return lo;
}

// one_minus_beta1/2 come from the host in f64 (as torch computes them in Python), not 1 - beta in f32.
extern "C" __global__ void adamw_multi_f32(const unsigned long long* meta, int nt, float grad_scale,
                                           float beta2, float one_minus_beta1,
                                           float one_minus_beta2, float step_size,
                                           float bc2_sqrt, float eps) {
    int t = find_tensor(meta, nt, blockIdx.x);
    const unsigned long long* mt = meta + t * META;
    float* p = (float*)mt[0];
    const float* g = (const float*)mt[1];
    float* m = (float*)mt[2];
    float* v = (float*)mt[3];
    long long n = (long long)mt[4];
    float decay = __uint_as_float((unsigned)mt[6]);
    long long start = ((long long)blockIdx.x - (long long)mt[5]) * ADAM_CHUNK;
    long long end = min(start + ADAM_CHUNK, n);
    for (long long i = start + threadIdx.x; i < end; i += blockDim.x) {
        float gi = g[i] * grad_scale;
        float mi = m[i];
        mi = mi + one_minus_beta1 * (gi - mi);
        float vi = v[i] * beta2 + one_minus_beta2 * gi * gi;
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        p[i] = p[i] * decay - step_size * (mi / denom);
        m[i] = mi;
        v[i] = vi;
    }
}

// acc += g for every tensor of the table ([acc, g, 0, 0, numel, first block, 0, 0]): gradient
// accumulation over micro-batches in place, one launch for all parameters.
extern "C" __global__ void add_into_multi_f32(const unsigned long long* meta, int nt) {
    int t = find_tensor(meta, nt, blockIdx.x);
    const unsigned long long* mt = meta + t * META;
    float* acc = (float*)mt[0];
    const float* g = (const float*)mt[1];
    long long n = (long long)mt[4];
    long long start = ((long long)blockIdx.x - (long long)mt[5]) * ADAM_CHUNK;
    long long end = min(start + ADAM_CHUNK, n);
    for (long long i = start + threadIdx.x; i < end; i += blockDim.x) acc[i] += g[i];
}

// partial[block] = sum of squared gradients of the block's chunk.
extern "C" __global__ void grad_sumsq_multi_f32(const unsigned long long* meta, int nt,
                                                float* partial) {
    __shared__ float s[32];
    int t = find_tensor(meta, nt, blockIdx.x);
    const unsigned long long* mt = meta + t * META;
    const float* g = (const float*)mt[1];
    long long n = (long long)mt[4];
    long long start = ((long long)blockIdx.x - (long long)mt[5]) * ADAM_CHUNK;
    long long end = min(start + ADAM_CHUNK, n);
    float acc = 0.f;
    for (long long i = start + threadIdx.x; i < end; i += blockDim.x) acc += g[i] * g[i];
    acc = warp_sum(acc);
    if ((threadIdx.x & 31) == 0) s[threadIdx.x / 32] = acc;
    __syncthreads();
    if (threadIdx.x < 32) {
        float v = threadIdx.x < blockDim.x / 32 ? s[threadIdx.x] : 0.f;
        v = warp_sum(v);
        if (threadIdx.x == 0) partial[blockIdx.x] = v;
    }
}

// out[0] = sum of partial[0..n], accumulated in f64 by one block of 1024 threads.
extern "C" __global__ void sum_f32_to_f64(const float* partial, double* out, int n) {
    __shared__ double s[1024];
    double acc = 0.0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) acc += (double)partial[i];
    s[threadIdx.x] = acc;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
        if (threadIdx.x < w) s[threadIdx.x] += s[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) out[0] = s[0];
}

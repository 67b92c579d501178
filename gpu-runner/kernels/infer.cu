// Inference-only fused kernels of the student's packed (padding-free) bf16 forward: the tokens
// of a batch are the rows of one [T, hidden] matrix, sequence b owning rows cu[b]..cu[b+1].
// Compiled to PTX by build.rs (only with the `cuda` feature), wrapped in src/kernels/infer.rs.
// No backward: training keeps the padded path of student.cu.

#include "common.cuh"

__device__ __forceinline__ unsigned pack2(float a, float b) {
    return (unsigned)to_bf16(a) | ((unsigned)to_bf16(b) << 16);
}
__device__ __forceinline__ float lo(unsigned w) { return __uint_as_float(w << 16); }
__device__ __forceinline__ float hi(unsigned w) { return __uint_as_float(w & 0xffff0000u); }

// 8 consecutive bf16 (16 bytes, 16-byte aligned) as floats, and back.
__device__ __forceinline__ void ld8(const bf16* p, float (&v)[8]) {
    uint4 u = *(const uint4*)p;
    v[0] = lo(u.x); v[1] = hi(u.x); v[2] = lo(u.y); v[3] = hi(u.y);
    v[4] = lo(u.z); v[5] = hi(u.z); v[6] = lo(u.w); v[7] = hi(u.w);
}
__device__ __forceinline__ void st8(bf16* p, const float (&v)[8]) {
    uint4 u;
    u.x = pack2(v[0], v[1]); u.y = pack2(v[2], v[3]);
    u.z = pack2(v[4], v[5]); u.w = pack2(v[6], v[7]);
    *(uint4*)p = u;
}
// 8 consecutive f32 (32 bytes, 16-byte aligned).
__device__ __forceinline__ void ld8(const float* p, float (&v)[8]) {
    float4 a = *(const float4*)p, b = *(const float4*)(p + 4);
    v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w;
    v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
}

// ------------------------------------------------------------- (bias + residual +) LayerNorm
// One warp per row of d <= 1024 values held in registers; statistics in f32 (two passes,
// biased variance, as torch). out = LN(y + bias + res) with bias and res optional (null).
#define LN_MAX_PER_LANE 32

template <typename TY>
__device__ __forceinline__ void add_ln_row(const TY* y, const float* bias, const bf16* res,
                                           const float* gamma, const float* beta, bf16* out,
                                           int n, int d, float eps) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x & 31;
    if (row >= n) return;
    long long base = (long long)row * d;
    float v[LN_MAX_PER_LANE];
    float s = 0.f;
#pragma unroll
    for (int k = 0; k < LN_MAX_PER_LANE; k++) {
        int j = lane + 32 * k;
        float x = 0.f;
        if (j < d) {
            x = ld(y, base + j);
            if (bias) x += bias[j];
            if (res) x += ld(res, base + j);
        }
        v[k] = x;
        s += x;
    }
    float mean = warp_sum(s) / d;
    float q = 0.f;
#pragma unroll
    for (int k = 0; k < LN_MAX_PER_LANE; k++) {
        int j = lane + 32 * k;
        float c = j < d ? v[k] - mean : 0.f;
        q += c * c;
    }
    float rstd = rsqrtf(warp_sum(q) / d + eps);
#pragma unroll
    for (int k = 0; k < LN_MAX_PER_LANE; k++) {
        int j = lane + 32 * k;
        if (j < d) st(out, base + j, (v[k] - mean) * rstd * gamma[j] + beta[j]);
    }
}

// The same for bf16 rows with d % 256 == 0 (d <= 1024): lane owns the 8-element chunks at
// 8·lane + 256·k, read and written 16 bytes at a time.
#define LN_MAX_CHUNKS 4

__device__ __forceinline__ void add_ln_row_vec(const bf16* y, const float* bias, const bf16* res,
                                               const float* gamma, const float* beta, bf16* out,
                                               int n, int d, float eps) {
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x & 31;
    if (row >= n) return;
    long long base = (long long)row * d;
    int chunks = d / 256;
    float v[LN_MAX_CHUNKS][8];
    float s = 0.f;
#pragma unroll
    for (int k = 0; k < LN_MAX_CHUNKS; k++) {
        if (k >= chunks) break;
        int j = 256 * k + 8 * lane;
        float a[8], b[8], r[8];
        ld8(y + base + j, a);
        ld8(bias + j, b);
        ld8(res + base + j, r);
#pragma unroll
        for (int e = 0; e < 8; e++) {
            v[k][e] = a[e] + b[e] + r[e];
            s += v[k][e];
        }
    }
    float mean = warp_sum(s) / d;
    float q = 0.f;
#pragma unroll
    for (int k = 0; k < LN_MAX_CHUNKS; k++) {
        if (k >= chunks) break;
#pragma unroll
        for (int e = 0; e < 8; e++) {
            float c = v[k][e] - mean;
            q += c * c;
        }
    }
    float rstd = rsqrtf(warp_sum(q) / d + eps);
#pragma unroll
    for (int k = 0; k < LN_MAX_CHUNKS; k++) {
        if (k >= chunks) break;
        int j = 256 * k + 8 * lane;
        float g[8], b[8], o[8];
        ld8(gamma + j, g);
        ld8(beta + j, b);
#pragma unroll
        for (int e = 0; e < 8; e++) o[e] = (v[k][e] - mean) * rstd * g[e] + b[e];
        st8(out + base + j, o);
    }
}

// params = [bias (d) | gamma (d) | beta (d)], f32. The vector path needs d % 256 == 0 and
// 16-byte aligned rows (the host checks); the branch is uniform over the launch.
extern "C" __global__ void bias_residual_ln_bf16(const bf16* y, const bf16* res,
                                                 const float* params, bf16* out, int n, int d,
                                                 float eps, int vec) {
    if (vec)
        add_ln_row_vec(y, params, res, params + d, params + 2 * d, out, n, d, eps);
    else
        add_ln_row(y, params, res, params + d, params + 2 * d, out, n, d, eps);
}

// params = [gamma (d) | beta (d)], f32; the embeddings' LayerNorm, f32 in, bf16 out.
extern "C" __global__ void ln_f32_to_bf16(const float* x, const float* params, bf16* out, int n,
                                          int d, float eps) {
    add_ln_row(x, (const float*)nullptr, (const bf16*)nullptr, params, params + d, out, n, d, eps);
}

// ------------------------------------------------------------------------------- attention
// ctx = softmax(q kᵀ · scale) v per sequence and head, on the tensor cores (mma.sync
// m16n8k16, bf16 in, f32 accumulate), from the fused projection qkv [T, 3·H·dh] (columns
// q | k | v, head h at h·dh) plus its f32 bias [3·H·dh]. All keys of a packed sequence are real:
// no mask beyond the sequence's length. Grid (sequences, heads), ATT_WARPS warps. The block puts
// the sequence's keys (row-major) and values (transposed), biased and rounded to bf16 as a bf16
// projection would be, in dynamic shared memory sized for the batch's longest sequence (lmax);
// each warp takes 16 query rows at a time: S = Q Kᵀ in registers, softmax there (a row lives in
// the 4 lanes of a quad), P (bf16) V, then 1/rowsum. Needs dh % 8 == 0, dh <= 64,
// lmax <= ATT_MAX_L and 16-byte aligned rows (the host checks).
#define ATT_MAX_L 128
#define ATT_MAX_D 64
#define ATT_WARPS 4
#define ATT_KEY_TILES (ATT_MAX_L / 8)
#define ATT_DIM_TILES (ATT_MAX_D / 8)
#define ATT_DIM_STEPS (ATT_MAX_D / 16)
// Words per key row: 32 + 4, so that the 8 rows × 4 words of a B fragment hit 32 banks.
#define ATT_KEY_STRIDE 36

// d += a · b for one m16n8k16 tile (a: 4 registers of bf16 pairs, b: 2).
__device__ __forceinline__ void mma_bf16(float (&d)[4], unsigned a0, unsigned a1, unsigned a2,
                                         unsigned a3, unsigned b0, unsigned b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

extern "C" __global__ void attention_packed_bf16(const bf16* qkv, const float* bias,
                                                 const unsigned* cu, bf16* out, int heads,
                                                 int dh, float scale, int lmax) {
    extern __shared__ uint4 smem4[];
    int lpad = (lmax + 15) & ~15;
    int vt_stride = lpad / 2 + 4;  // words per value column: 4 × odd, conflict-free
    unsigned* ks = (unsigned*)smem4;                 // [lpad][ATT_KEY_STRIDE]
    unsigned* vt = ks + lpad * ATT_KEY_STRIDE;       // [ATT_MAX_D][vt_stride]
    bf16* vt16 = (bf16*)vt;
    int b = blockIdx.x, h = blockIdx.y;
    int start = (int)cu[b];
    int len = min(min((int)cu[b + 1] - start, lmax), ATT_MAX_L);
    int hd = heads * dh, chunks = dh / 8;
    long long stride = 3LL * hd;
    const float* qb = bias + h * dh;
    const float* kb = bias + hd + h * dh;
    const float* vb = bias + 2 * hd + h * dh;
    // Keys and values up to the next multiple of 16 (zeros past the end: P·V must not meet
    // stale shared memory).
    int upto = (len + 15) & ~15;
    for (int idx = threadIdx.x; idx < upto * chunks; idx += blockDim.x) {
        int j = idx / chunks, c = idx - j * chunks;
        float k[8], v[8];
        if (j < len) {
            const bf16* row = qkv + (long long)(start + j) * stride + h * dh + 8 * c;
            float kbias[8], vbias[8];
            ld8(row + hd, k);
            ld8(row + 2 * hd, v);
            ld8(kb + 8 * c, kbias);
            ld8(vb + 8 * c, vbias);
#pragma unroll
            for (int e = 0; e < 8; e++) {
                k[e] += kbias[e];
                v[e] += vbias[e];
            }
        } else {
#pragma unroll
            for (int e = 0; e < 8; e++) k[e] = v[e] = 0.f;
        }
        uint4 kw;
        kw.x = pack2(k[0], k[1]); kw.y = pack2(k[2], k[3]);
        kw.z = pack2(k[4], k[5]); kw.w = pack2(k[6], k[7]);
        *(uint4*)(ks + j * ATT_KEY_STRIDE + 4 * c) = kw;
#pragma unroll
        for (int e = 0; e < 8; e++) vt16[(8 * c + e) * (2 * vt_stride) + j] = to_bf16(v[e]);
    }
    __syncthreads();
    int warp = threadIdx.x / 32, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    int key_tiles = (len + 7) / 8, dim_steps = (dh + 15) / 16, dim_tiles = dh / 8;
    // The bf16 pair (q + bias) of row r, dims d and d + 1.
    auto q_pair = [&](int r, int d) -> unsigned {
        if (r >= len || d >= dh) return 0u;
        unsigned w = *(const unsigned*)(qkv + (long long)(start + r) * stride + h * dh + d);
        return pack2(lo(w) + qb[d], hi(w) + qb[d + 1]);
    };
    for (int tile = warp; tile * 16 < len; tile += ATT_WARPS) {
        int r0 = tile * 16 + g, r1 = r0 + 8;
        unsigned qa[ATT_DIM_STEPS][4];
#pragma unroll
        for (int s = 0; s < ATT_DIM_STEPS; s++) {
            int d0 = 16 * s + 2 * t, d1 = d0 + 8;
            qa[s][0] = q_pair(r0, d0);
            qa[s][1] = q_pair(r1, d0);
            qa[s][2] = q_pair(r0, d1);
            qa[s][3] = q_pair(r1, d1);
        }
        // S = Q Kᵀ: key tile n holds keys 8n + 2t, +1 of rows r0 (0, 1) and r1 (2, 3).
        float sc[ATT_KEY_TILES][4];
        float m0 = -INFINITY, m1 = -INFINITY;
#pragma unroll
        for (int n = 0; n < ATT_KEY_TILES; n++) {
            sc[n][0] = sc[n][1] = sc[n][2] = sc[n][3] = 0.f;
            if (n < key_tiles) {
#pragma unroll
                for (int s = 0; s < ATT_DIM_STEPS; s++) {
                    if (s < dim_steps) {
                        const unsigned* kr = ks + (8 * n + g) * ATT_KEY_STRIDE + 8 * s + t;
                        unsigned b1 = 16 * s + 8 < dh ? kr[4] : 0u;
                        mma_bf16(sc[n], qa[s][0], qa[s][1], qa[s][2], qa[s][3], kr[0], b1);
                    }
                }
                int key = 8 * n + 2 * t;
                sc[n][0] = key < len ? sc[n][0] * scale : -INFINITY;
                sc[n][1] = key + 1 < len ? sc[n][1] * scale : -INFINITY;
                sc[n][2] = key < len ? sc[n][2] * scale : -INFINITY;
                sc[n][3] = key + 1 < len ? sc[n][3] * scale : -INFINITY;
                m0 = fmaxf(m0, fmaxf(sc[n][0], sc[n][1]));
                m1 = fmaxf(m1, fmaxf(sc[n][2], sc[n][3]));
            }
        }
        m0 = fmaxf(m0, __shfl_xor_sync(0xffffffffu, m0, 1));
        m0 = fmaxf(m0, __shfl_xor_sync(0xffffffffu, m0, 2));
        m1 = fmaxf(m1, __shfl_xor_sync(0xffffffffu, m1, 1));
        m1 = fmaxf(m1, __shfl_xor_sync(0xffffffffu, m1, 2));
        float l0 = 0.f, l1 = 0.f;
#pragma unroll
        for (int n = 0; n < ATT_KEY_TILES; n++) {
            if (n < key_tiles) {
                sc[n][0] = __expf(sc[n][0] - m0);
                sc[n][1] = __expf(sc[n][1] - m0);
                sc[n][2] = __expf(sc[n][2] - m1);
                sc[n][3] = __expf(sc[n][3] - m1);
                l0 += sc[n][0] + sc[n][1];
                l1 += sc[n][2] + sc[n][3];
            }
        }
        l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
        l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
        l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
        l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
        // O = P V: key tiles 2s and 2s + 1 form the A fragment of key step s.
        float o[ATT_DIM_TILES][4];
#pragma unroll
        for (int u = 0; u < ATT_DIM_TILES; u++) o[u][0] = o[u][1] = o[u][2] = o[u][3] = 0.f;
#pragma unroll
        for (int s = 0; s < ATT_KEY_TILES / 2; s++) {
            if (2 * s < key_tiles) {
                unsigned p0 = pack2(sc[2 * s][0], sc[2 * s][1]);
                unsigned p1 = pack2(sc[2 * s][2], sc[2 * s][3]);
                bool second = 2 * s + 1 < key_tiles;
                unsigned p2 = second ? pack2(sc[2 * s + 1][0], sc[2 * s + 1][1]) : 0u;
                unsigned p3 = second ? pack2(sc[2 * s + 1][2], sc[2 * s + 1][3]) : 0u;
#pragma unroll
                for (int u = 0; u < ATT_DIM_TILES; u++) {
                    if (u < dim_tiles) {
                        const unsigned* vr = vt + (8 * u + g) * vt_stride + 8 * s + t;
                        mma_bf16(o[u], p0, p1, p2, p3, vr[0], vr[4]);
                    }
                }
            }
        }
        float inv0 = 1.f / l0, inv1 = 1.f / l1;
#pragma unroll
        for (int u = 0; u < ATT_DIM_TILES; u++) {
            if (u < dim_tiles) {
                int col = h * dh + 8 * u + 2 * t;
                if (r0 < len)
                    *(unsigned*)(out + (long long)(start + r0) * hd + col) =
                        pack2(o[u][0] * inv0, o[u][1] * inv0);
                if (r1 < len)
                    *(unsigned*)(out + (long long)(start + r1) * hd + col) =
                        pack2(o[u][2] * inv1, o[u][3] * inv1);
            }
        }
    }
}

// ------------------------------------------------------------------------------- bias + GELU
// y = gelu(x + bias) (exact erf form) on bf16 rows of width d % 8 == 0, 16 bytes per load
// (x, y and bias 16-byte aligned: the host checks); a block per row at a time.
__device__ __forceinline__ float gelu(float u) {
    return 0.5f * u * (1.f + erff(u * 0.70710678118654752f));
}

extern "C" __global__ void bias_gelu_bf16x8(const bf16* x, const float* bias, bf16* y,
                                            long long rows, int d) {
    int chunks = d / 8;
    for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
        long long base = r * d;
        for (int c = threadIdx.x; c < chunks; c += blockDim.x) {
            float v[8], b[8];
            ld8(x + base + 8 * c, v);
            ld8(bias + 8 * c, b);
#pragma unroll
            for (int e = 0; e < 8; e++) v[e] = gelu(v[e] + b[e]);
            st8(y + base + 8 * c, v);
        }
    }
}

// Dequantize (acc == 0: out = q * scale) or dequantize-accumulate (acc != 0:
// out = out + q * scale, a multiply and a separate add, never an FMA).
// Grid-stride loops; every block size is a multiple of 32, so the 4 (int8) or 8
// (int4) values a thread handles always share one scale.

// Block index of element i: 32-bit division (far cheaper on a GPU) whenever it fits.
__device__ __forceinline__ u64 block_of(u64 i, u32 block) {
    return i <= 0xFFFFFFFFull ? (u64)((u32)i / block) : i / block;
}

__device__ __forceinline__ float dq(float old, int q, float scale, int acc) {
    float v = __fmul_rn((float)q, scale);
    return acc ? __fadd_rn(old, v) : v;
}

extern "C" __global__ void dequantize_int8(
    const signed char* __restrict__ q, const float* __restrict__ scales, u64 n, u32 block,
    float* __restrict__ out, int acc)
{
    const u64 stride = (u64)gridDim.x * blockDim.x * 4;
    for (u64 i = ((u64)blockIdx.x * blockDim.x + threadIdx.x) * 4; i < n; i += stride) {
        const float s = scales[block_of(i, block)];
        if (i + 4 <= n) {
            char4 c = *reinterpret_cast<const char4*>(q + i);
            float4 o = acc ? *reinterpret_cast<const float4*>(out + i) : make_float4(0, 0, 0, 0);
            o.x = dq(o.x, c.x, s, acc);
            o.y = dq(o.y, c.y, s, acc);
            o.z = dq(o.z, c.z, s, acc);
            o.w = dq(o.w, c.w, s, acc);
            *reinterpret_cast<float4*>(out + i) = o;
        } else {
            for (u64 k = i; k < n; k++) out[k] = dq(acc ? out[k] : 0.0f, q[k], s, acc);
        }
    }
}

__device__ __forceinline__ int nibble(u32 word, int k) {
    return ((int)(word << (28 - 4 * k))) >> 28; // sign-extend nibble k of a 32-bit word
}

extern "C" __global__ void dequantize_int4(
    const unsigned char* __restrict__ q, const float* __restrict__ scales, u64 n, u32 block,
    float* __restrict__ out, int acc)
{
    const u64 stride = (u64)gridDim.x * blockDim.x * 8;
    for (u64 i = ((u64)blockIdx.x * blockDim.x + threadIdx.x) * 8; i < n; i += stride) {
        const float s = scales[block_of(i, block)];
        if (i + 8 <= n) {
            u32 w = *reinterpret_cast<const u32*>(q + i / 2);
            float4 a = acc ? *reinterpret_cast<const float4*>(out + i) : make_float4(0, 0, 0, 0);
            float4 b = acc ? *reinterpret_cast<const float4*>(out + i + 4) : make_float4(0, 0, 0, 0);
            a.x = dq(a.x, nibble(w, 0), s, acc);
            a.y = dq(a.y, nibble(w, 1), s, acc);
            a.z = dq(a.z, nibble(w, 2), s, acc);
            a.w = dq(a.w, nibble(w, 3), s, acc);
            b.x = dq(b.x, nibble(w, 4), s, acc);
            b.y = dq(b.y, nibble(w, 5), s, acc);
            b.z = dq(b.z, nibble(w, 6), s, acc);
            b.w = dq(b.w, nibble(w, 7), s, acc);
            *reinterpret_cast<float4*>(out + i) = a;
            *reinterpret_cast<float4*>(out + i + 4) = b;
        } else {
            for (u64 k = i; k < n; k++) {
                u32 byte = q[k / 2];
                out[k] = dq(acc ? out[k] : 0.0f, nibble(byte, (int)(k & 1)), s, acc);
            }
        }
    }
}

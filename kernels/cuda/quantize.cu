// Blockwise quantization: one warp per block of `block` values (a multiple of 32).
// Launch with blockDim.x a multiple of 32; warps past the last block return.
// `bad` starts at ~0 and receives the smallest index of a non-finite input.

// Int8: scale = absmax / 127; q = clamp(round_half_even(x / scale), -127, 127).
extern "C" __global__ void quantize_int8(
    const float* __restrict__ x, u64 n, u32 block,
    float* __restrict__ scales, signed char* __restrict__ q, u64* __restrict__ bad)
{
    const u64 b = ((u64)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const u32 lane = threadIdx.x & 31;
    const u64 start = b * block;
    if (start >= n) return;
    const u32 len = (u32)min((u64)block, n - start);
    const float* xb = x + start;
    signed char* qb = q + start;
    // Wide loads when the block is whole and a multiple of 128 (4 floats a lane).
    const bool wide = len == block && (block & 127) == 0;

    u32 m = 0;
    if (wide) {
        for (u32 j = lane * 4; j < len; j += 128) {
            float4 v = *reinterpret_cast<const float4*>(xb + j);
            m = max(max(m, abs_bits(v.x)), max(abs_bits(v.y), max(abs_bits(v.z), abs_bits(v.w))));
        }
    } else {
        for (u32 j = lane; j < len; j += 32) m = max(m, abs_bits(xb[j]));
    }
    m = warp_max(m);
    if (m >= INF_BITS) { report_first_bad(xb, len, start, bad); return; }

    const float scale = __fdiv_rn(__uint_as_float(m), 127.0f);
    if (lane == 0) scales[b] = scale;
    if (wide) {
        for (u32 j = lane * 4; j < len; j += 128) {
            float4 v = *reinterpret_cast<const float4*>(xb + j);
            char4 o;
            if (scale == 0.0f) {
                o = make_char4(0, 0, 0, 0);
            } else {
                o.x = (signed char)min(127, max(-127, __float2int_rn(__fdiv_rn(v.x, scale))));
                o.y = (signed char)min(127, max(-127, __float2int_rn(__fdiv_rn(v.y, scale))));
                o.z = (signed char)min(127, max(-127, __float2int_rn(__fdiv_rn(v.z, scale))));
                o.w = (signed char)min(127, max(-127, __float2int_rn(__fdiv_rn(v.w, scale))));
            }
            *reinterpret_cast<char4*>(qb + j) = o;
        }
    } else {
        for (u32 j = lane; j < len; j += 32) {
            int r = scale == 0.0f ? 0 : __float2int_rn(__fdiv_rn(xb[j], scale));
            qb[j] = (signed char)min(127, max(-127, r));
        }
    }
}

// floor(v) + (u < v - floor(v)), clamped to [-7, 7], as a two's-complement nibble.
__device__ __forceinline__ u32 stochastic_nibble(float v, float u) {
    float fl = floorf(v);
    float frac = __fsub_rn(v, fl); // exact
    int r = (int)fl + (u < frac ? 1 : 0);
    return (u32)min(7, max(-7, r)) & 0xFu;
}

// Int4: scale = absmax / 7; stochastic rounding from (seed, global index); element
// 2k in the low nibble of byte k. Each lane owns pairs of values (one byte).
extern "C" __global__ void quantize_int4(
    const float* __restrict__ x, u64 n, u32 block, u64 seed,
    float* __restrict__ scales, unsigned char* __restrict__ q, u64* __restrict__ bad)
{
    const u64 b = ((u64)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const u32 lane = threadIdx.x & 31;
    const u64 start = b * block;
    if (start >= n) return;
    const u32 len = (u32)min((u64)block, n - start);
    const float* xb = x + start;
    unsigned char* qb = q + start / 2; // start is even: blocks are multiples of 32

    u32 m = 0;
    for (u32 j = lane * 2; j < len; j += 64) {
        if (j + 1 < len) {
            float2 v = *reinterpret_cast<const float2*>(xb + j);
            m = max(m, max(abs_bits(v.x), abs_bits(v.y)));
        } else {
            m = max(m, abs_bits(xb[j]));
        }
    }
    m = warp_max(m);
    if (m >= INF_BITS) { report_first_bad(xb, len, start, bad); return; }

    const float scale = __fdiv_rn(__uint_as_float(m), 7.0f);
    if (lane == 0) scales[b] = scale;
    u32 key_hi = (u32)(start >> 32);
    u64 key = stream_key(seed, key_hi);
    for (u32 j = lane * 2; j < len; j += 64) {
        const u64 i = start + j; // even, so i and i + 1 share a segment
        if ((u32)(i >> 32) != key_hi) { key_hi = (u32)(i >> 32); key = stream_key(seed, key_hi); }
        if (scale == 0.0f) { qb[j / 2] = 0; continue; }
        if (j + 1 < len) {
            float2 v = *reinterpret_cast<const float2*>(xb + j);
            u32 lo = stochastic_nibble(__fdiv_rn(v.x, scale), uniform(key, (u32)i));
            u32 hi = stochastic_nibble(__fdiv_rn(v.y, scale), uniform(key, (u32)i + 1));
            qb[j / 2] = (unsigned char)(lo | (hi << 4));
        } else {
            qb[j / 2] = (unsigned char)stochastic_nibble(__fdiv_rn(xb[j], scale), uniform(key, (u32)i));
        }
    }
}

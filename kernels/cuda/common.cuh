// Shared by every kernel in this folder. The Rust side prepends this file to each
// kernel source before NVRTC compiles it (NVRTC cannot see files at run time), so
// the .cu files do not #include it.
//
// Bit-exactness with the CPU reference (kernels/src/block.rs) rests on:
//  - IEEE division, multiply and add with round-to-nearest-even: __fdiv_rn,
//    __fmul_rn, __fadd_rn, __fsub_rn (never contracted into an FMA), compiled with
//    --fmad=false --ftz=false --prec-div=true and no fast-math;
//  - the same counter-based hash for stochastic rounding (kernels/src/stochastic.rs);
//  - exact integer max of |x|'s bits for the absmax.

typedef unsigned int u32;
typedef unsigned long long u64;

#define INF_BITS 0x7F800000u

// splitmix64: turns (seed, segment) into a stream key. Same constants as the CPU.
__device__ __forceinline__ u64 splitmix64(u64 x) {
    u64 z = x + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// MurmurHash3's 32-bit finaliser.
__device__ __forceinline__ u32 fmix32(u32 h) {
    h ^= h >> 16;
    h *= 0x85EBCA6Bu;
    h ^= h >> 13;
    h *= 0xC2B2AE35u;
    return h ^ (h >> 16);
}

// The key of the 2^32-element segment `hi` (StreamKey::new on the CPU).
__device__ __forceinline__ u64 stream_key(u64 seed, u32 hi) {
    return splitmix64(seed ^ ((u64)hi * 0xD1B54A32D192ED03ull));
}

// A uniform draw in [0, 1) with 24 random bits for element `lo` of a segment.
__device__ __forceinline__ float uniform(u64 key, u32 lo) {
    u32 h = fmix32(fmix32(lo ^ (u32)key) ^ (u32)(key >> 32));
    return __fmul_rn(__uint2float_rn(h >> 8), 1.0f / 16777216.0f);
}

__device__ __forceinline__ u32 abs_bits(float x) {
    return __float_as_uint(x) & 0x7FFFFFFFu;
}

__device__ __forceinline__ u32 warp_max(u32 v) {
    for (int off = 16; off > 0; off >>= 1) v = max(v, __shfl_xor_sync(0xFFFFFFFFu, v, off));
    return v;
}

__device__ __forceinline__ u64 warp_min64(u64 v) {
    for (int off = 16; off > 0; off >>= 1) v = min(v, __shfl_xor_sync(0xFFFFFFFFu, v, off));
    return v;
}

// Reports the block's first non-finite index (whole warp calls it; lane 0 publishes).
__device__ __forceinline__ void report_first_bad(const float* xb, u32 len, u64 start, u64* bad) {
    u64 first = ~0ull;
    for (u32 j = threadIdx.x & 31; j < len; j += 32) {
        if (abs_bits(xb[j]) >= INF_BITS) { first = start + j; break; }
    }
    first = warp_min64(first);
    if ((threadIdx.x & 31) == 0) atomicMin(bad, first);
}

// Runs the CUDA kernels of ../quantize.cu and ../dequantize.cu, unmodified, on the CPU:
// a tiny emulation of the CUDA execution model (32 lanes as 32 threads in lockstep at
// each warp shuffle) and of the intrinsics (IEEE float ops, compiled with
// -ffp-contract=off). The test `tests/cuda_on_cpu.rs` compares its bytes with the Rust
// reference, so the kernels' indexing, packing, hashing and rounding are checked on
// machines without a GPU. It checks the CUDA C logic, not NVRTC's code generation
// (the PTX check and the GPU test cover that).
//
// Usage:
//   host quantize   BITS BLOCK SEED IN.f32 OUT.scales OUT.data      (prints the bad index)
//   host dequantize BITS BLOCK ACC MAX_GRID SCALES DATA INOUT.f32

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __forceinline__ inline

struct dim3 { unsigned x, y, z; };
thread_local dim3 threadIdx, blockIdx;
dim3 blockDim, gridDim;

struct float2 { float x, y; };
struct float4 { float x, y, z, w; };
struct char4 { signed char x, y, z, w; };
inline float4 make_float4(float a, float b, float c, float d) { return {a, b, c, d}; }
inline char4 make_char4(signed char a, signed char b, signed char c, signed char d) { return {a, b, c, d}; }

inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline int __float2int_rn(float v) { return (int)std::nearbyintf(v); } // ties to even
inline float __uint2float_rn(unsigned v) { return (float)v; }
inline unsigned __float_as_uint(float f) { unsigned u; std::memcpy(&u, &f, 4); return u; }
inline float __uint_as_float(unsigned u) { float f; std::memcpy(&f, &u, 4); return f; }
using std::max;
using std::min;

inline unsigned long long atomicMin(unsigned long long* p, unsigned long long v) {
    std::atomic_ref<unsigned long long> a(*p);
    unsigned long long old = a.load();
    while (v < old && !a.compare_exchange_weak(old, v)) {}
    return old;
}

// One warp: 32 threads that meet at every shuffle.
struct Warp {
    std::barrier<> bar{32};
    unsigned long long slot[32];
};
thread_local Warp* warp;

template <class T> T __shfl_xor_sync(unsigned, T v, int off) {
    unsigned lane = threadIdx.x & 31;
    warp->slot[lane] = (unsigned long long)v;
    warp->bar.arrive_and_wait();
    T r = (T)warp->slot[lane ^ off];
    warp->bar.arrive_and_wait();
    return r;
}

#include "../common.cuh"
#include "../quantize.cu"
#include "../dequantize.cu"

// Runs `kernel` over the grid one warp at a time, each lane on its own thread.
static void launch(unsigned grid, unsigned block, const std::function<void()>& kernel) {
    gridDim = {grid, 1, 1};
    blockDim = {block, 1, 1};
    for (unsigned b = 0; b < grid; b++) {
        for (unsigned w = 0; w < block / 32; w++) {
            Warp shared;
            std::vector<std::thread> lanes;
            for (unsigned l = 0; l < 32; l++) {
                lanes.emplace_back([&, l] {
                    warp = &shared;
                    blockIdx = {b, 0, 0};
                    threadIdx = {w * 32 + l, 0, 0};
                    kernel();
                });
            }
            for (auto& t : lanes) t.join();
        }
    }
}

template <class T> static std::vector<T> load(const char* path) {
    FILE* f = std::fopen(path, "rb");
    if (!f) { std::perror(path); std::exit(2); }
    std::vector<T> v;
    T x;
    while (std::fread(&x, sizeof(T), 1, f) == 1) v.push_back(x);
    std::fclose(f);
    return v;
}

template <class T> static void save(const char* path, const std::vector<T>& v) {
    FILE* f = std::fopen(path, "wb");
    if (!f) { std::perror(path); std::exit(2); }
    std::fwrite(v.data(), sizeof(T), v.size(), f);
    std::fclose(f);
}

int main(int argc, char** argv) {
    const unsigned threads = 256; // as src/cuda/device.rs
    if (argc == 8 && std::strcmp(argv[1], "quantize") == 0) {
        int bits = std::atoi(argv[2]);
        u32 block = (u32)std::strtoul(argv[3], nullptr, 10);
        u64 seed = std::strtoull(argv[4], nullptr, 10);
        std::vector<float> x = load<float>(argv[5]);
        u64 n = x.size(), blocks = (n + block - 1) / block;
        std::vector<float> scales(blocks);
        std::vector<unsigned char> data(bits == 8 ? n : (n + 1) / 2);
        u64 bad = ~0ull;
        unsigned grid = (unsigned)std::max<u64>(1, (blocks + threads / 32 - 1) / (threads / 32));
        launch(grid, threads, [&] {
            if (bits == 8)
                quantize_int8(x.data(), n, block, scales.data(), (signed char*)data.data(), &bad);
            else
                quantize_int4(x.data(), n, block, seed, scales.data(), data.data(), &bad);
        });
        save(argv[6], scales);
        save(argv[7], data);
        std::printf("%llu\n", bad);
        return 0;
    }
    if (argc == 9 && std::strcmp(argv[1], "dequantize") == 0) {
        int bits = std::atoi(argv[2]);
        u32 block = (u32)std::strtoul(argv[3], nullptr, 10);
        int acc = std::atoi(argv[4]);
        u64 max_grid = std::strtoull(argv[5], nullptr, 10);
        std::vector<float> scales = load<float>(argv[6]);
        std::vector<unsigned char> data = load<unsigned char>(argv[7]);
        std::vector<float> out = load<float>(argv[8]);
        u64 n = out.size(), per = bits == 8 ? 4 : 8;
        unsigned grid = (unsigned)std::clamp<u64>((n + threads * per - 1) / (threads * per), 1, max_grid);
        launch(grid, threads, [&] {
            if (bits == 8)
                dequantize_int8((const signed char*)data.data(), scales.data(), n, block, out.data(), acc);
            else
                dequantize_int4(data.data(), scales.data(), n, block, out.data(), acc);
        });
        save(argv[8], out);
        return 0;
    }
    std::fprintf(stderr, "usage: see the comment at the top of host.cpp\n");
    return 2;
}

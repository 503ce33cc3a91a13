#include "fftconv_kernels.h"

#include <cuda_fp16.h>

#include <algorithm>

namespace hyena_deploy
{
namespace
{

constexpr int kThreads = 256;

__device__ inline float toFloat(float v) { return v; }
__device__ inline float toFloat(__half v) { return __half2float(v); }

template <typename T>
__device__ inline T fromFloat(float v);
template <>
__device__ inline float fromFloat<float>(float v) { return v; }
template <>
__device__ inline __half fromFloat<__half>(float v) { return __float2half_rn(v); }

//! Grid size for a grid-stride loop over n elements (capped; the loop covers the rest).
inline unsigned gridFor(int64_t n)
{
    return static_cast<unsigned>(std::min<int64_t>((n + kThreads - 1) / kThreads, 65535 * 8));
}

template <typename T>
__device__ inline float gated(T const* u, T const* pregate, int64_t i)
{
    float x = toFloat(u[i]);
    return pregate ? x * toFloat(pregate[i]) : x;
}

template <typename T>
__global__ void padKernel(FFTConvShape s, T const* u, T const* pregate, float* buffer)
{
    int64_t const total = s.rows() * s.fftSize;
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x)
    {
        int64_t const r = i / s.fftSize;
        int64_t const t = i % s.fftSize;
        buffer[r * s.rowStride() + t] = t < s.length ? gated(u, pregate, r * s.length + t) : 0.F;
    }
}

__global__ void multiplyKernel(FFTConvShape s, float2 const* spectrum, float2* buffer)
{
    int64_t const bins = s.bins();
    int64_t const total = s.rows() * bins;
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x)
    {
        int64_t const r = i / bins;
        float2 const k = spectrum[(r % s.channels) * bins + i % bins];
        float2 const x = buffer[i];
        buffer[i] = make_float2(x.x * k.x - x.y * k.y, x.x * k.y + x.y * k.x);
    }
}

template <typename T>
__global__ void finishKernel(FFTConvShape s, float const* buffer, T const* u, T const* pregate, float const* skip,
    T const* postgate, T* out)
{
    int64_t const total = s.rows() * s.length;
    for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{gridDim.x} * blockDim.x)
    {
        int64_t const r = i / s.length;
        float y = buffer[r * s.rowStride() + i % s.length];
        if (skip)
        {
            y += skip[r % s.channels] * gated(u, pregate, i);
        }
        if (postgate)
        {
            y *= toFloat(postgate[i]);
        }
        out[i] = fromFloat<T>(y);
    }
}

} // namespace

template <typename T>
cudaError_t launchFFTConvPad(FFTConvShape const& s, T const* u, T const* pregate, float* buffer, cudaStream_t stream)
{
    padKernel<T><<<gridFor(s.rows() * s.fftSize), kThreads, 0, stream>>>(s, u, pregate, buffer);
    return cudaGetLastError();
}

cudaError_t launchFFTConvMultiply(FFTConvShape const& s, float2 const* spectrum, float2* buffer, cudaStream_t stream)
{
    multiplyKernel<<<gridFor(s.rows() * s.bins()), kThreads, 0, stream>>>(s, spectrum, buffer);
    return cudaGetLastError();
}

template <typename T>
cudaError_t launchFFTConvFinish(FFTConvShape const& s, float const* buffer, T const* u, T const* pregate,
    float const* skip, T const* postgate, T* out, cudaStream_t stream)
{
    finishKernel<T><<<gridFor(s.rows() * s.length), kThreads, 0, stream>>>(s, buffer, u, pregate, skip, postgate, out);
    return cudaGetLastError();
}

template cudaError_t launchFFTConvPad<float>(FFTConvShape const&, float const*, float const*, float*, cudaStream_t);
template cudaError_t launchFFTConvPad<__half>(FFTConvShape const&, __half const*, __half const*, float*, cudaStream_t);
template cudaError_t launchFFTConvFinish<float>(FFTConvShape const&, float const*, float const*, float const*,
    float const*, float const*, float*, cudaStream_t);
template cudaError_t launchFFTConvFinish<__half>(FFTConvShape const&, float const*, __half const*, __half const*,
    float const*, __half const*, __half*, cudaStream_t);

} // namespace hyena_deploy

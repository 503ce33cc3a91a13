// CUDA kernels around cuFFT for the FFTConv plugin (math in float32, I/O float or __half).
//
// The work buffer holds rows = batch * channels signals of fftSize reals each, laid out for in-place
// R2C/C2R: row stride 2 * (fftSize / 2 + 1) floats, i.e. fftSize / 2 + 1 complex bins.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace hyena_deploy
{

struct FFTConvShape
{
    int64_t batch;
    int64_t channels;
    int64_t length;  // L <= fftSize / 2
    int64_t fftSize; // N

    __host__ __device__ int64_t rows() const { return batch * channels; }
    __host__ __device__ int64_t bins() const { return fftSize / 2 + 1; }
    __host__ __device__ int64_t rowStride() const { return 2 * bins(); } // in floats
};

//! buffer[r, t] = pregate * u for t < L, 0 for L <= t < N (pregate may be nullptr).
template <typename T>
cudaError_t launchFFTConvPad(FFTConvShape const& s, T const* u, T const* pregate, float* buffer, cudaStream_t stream);

//! buffer[r, k] *= spectrum[r % channels, k] (complex, spectrum (C, N/2+1) float2 with 1/N folded in).
cudaError_t launchFFTConvMultiply(FFTConvShape const& s, float2 const* spectrum, float2* buffer, cudaStream_t stream);

//! out = postgate * (buffer[r, t] + skip[c] * pregate * u) for t < L (skip, gates may be nullptr).
template <typename T>
cudaError_t launchFFTConvFinish(FFTConvShape const& s, float const* buffer, T const* u, T const* pregate,
    float const* skip, T const* postgate, T* out, cudaStream_t stream);

} // namespace hyena_deploy

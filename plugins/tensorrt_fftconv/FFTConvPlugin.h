// TensorRT IPluginV3 "FFTConv" (namespace "hyena_deploy", version "1"): the fused Hyena long
// convolution y = postgate * (causal_conv(x, h) + skip[c] * x), x = pregate * signal, with cuFFT.
//
// Inputs (linear layout): 0 signal (B, C, L) float|half; 1 spectrum (C, N/2+1, 2) float = rfft(h, N)/N;
// optional 2 skip (C,) float, 3 pregate and 4 postgate (B, C, L) like the signal. An optional input is
// absent when the node has fewer inputs or the tensor has no elements. Output 0: like the signal.
// The convolution runs in float32 for half I/O too. Field: fft_size (kINT32, N); plugin_namespace and
// plugin_version are accepted (the ONNX parser passes them as kCHAR) and not needed.
#pragma once

#include "NvInferRuntime.h"

#include <cufft.h>

#include <string>
#include <vector>

namespace hyena_deploy
{

class FFTConvPlugin : public nvinfer1::IPluginV3,
                      public nvinfer1::IPluginV3OneCore,
                      public nvinfer1::IPluginV3OneBuild,
                      public nvinfer1::IPluginV3OneRuntime
{
public:
    explicit FFTConvPlugin(int32_t fftSize);
    ~FFTConvPlugin() override;
    FFTConvPlugin(FFTConvPlugin const&) = delete;
    FFTConvPlugin& operator=(FFTConvPlugin const&) = delete;

    // IPluginV3
    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override;
    nvinfer1::IPluginV3* clone() noexcept override;

    // IPluginV3OneCore
    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;

    // IPluginV3OneBuild
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
        nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept override;
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const* shapeInputs,
        int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
        nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
        int32_t nbOutputs) noexcept override;
    int32_t getNbOutputs() const noexcept override;
    size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept override;

    // IPluginV3OneRuntime
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::PluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
        void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* context) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override;

private:
    //! (Re)create the R2C and C2R plans for `rows` transforms of fft_size; 0 on success.
    int32_t ensurePlans(int64_t rows) noexcept;
    void destroyPlans() noexcept;

    int32_t mFftSize;
    int32_t mNbInputs{2};
    cufftHandle mForward{};
    cufftHandle mInverse{};
    int64_t mPlanRows{0}; // 0: no plans
    std::vector<nvinfer1::PluginField> mSerialized;
    nvinfer1::PluginFieldCollection mSerializedCollection{};
};

class FFTConvPluginCreator : public nvinfer1::IPluginCreatorV3One
{
public:
    FFTConvPluginCreator();

    nvinfer1::IPluginV3* createPlugin(
        char const* name, nvinfer1::PluginFieldCollection const* fc, nvinfer1::TensorRTPhase phase) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override;
    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;

private:
    std::vector<nvinfer1::PluginField> mFields;
    nvinfer1::PluginFieldCollection mFieldCollection{};
};

} // namespace hyena_deploy

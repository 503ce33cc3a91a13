#include "FFTConvPlugin.h"

#include "fftconv_kernels.h"

#include <cuda_fp16.h>

#include <climits>
#include <cstring>
#include <mutex>
#include <new>

using namespace nvinfer1;

namespace hyena_deploy
{
namespace
{

constexpr char const* kName = "FFTConv";
constexpr char const* kVersion = "1";
constexpr char const* kNamespace = "hyena_deploy";
enum Input : int32_t
{
    kSIGNAL = 0,
    kSPECTRUM = 1,
    kSKIP = 2,
    kPREGATE = 3,
    kPOSTGATE = 4,
};

std::mutex gLoggerMutex;
ILoggerFinder* gLoggerFinder{nullptr};

void logError(char const* message) noexcept
{
    std::lock_guard<std::mutex> lock(gLoggerMutex);
    ILogger* logger = gLoggerFinder ? gLoggerFinder->findLogger() : nullptr;
    if (logger)
    {
        logger->log(ILogger::Severity::kERROR, message);
    }
}

int64_t volume(Dims const& dims) noexcept
{
    int64_t v = 1;
    for (int32_t i = 0; i < dims.nbDims; ++i)
    {
        v *= dims.d[i];
    }
    return v;
}

//! Pad + gate, R2C, spectrum product, C2R, crop + skip + gate, all on `stream`; 0 on success.
template <typename T>
int32_t runFFTConv(FFTConvShape const& s, cufftHandle forward, cufftHandle inverse, void const* const* in,
    bool const* present, void* out, float* buffer, cudaStream_t stream)
{
    auto const* u = static_cast<T const*>(in[kSIGNAL]);
    auto const* pregate = present[kPREGATE] ? static_cast<T const*>(in[kPREGATE]) : nullptr;
    auto const* postgate = present[kPOSTGATE] ? static_cast<T const*>(in[kPOSTGATE]) : nullptr;
    auto const* skip = present[kSKIP] ? static_cast<float const*>(in[kSKIP]) : nullptr;
    auto* spectrum = reinterpret_cast<cufftComplex*>(buffer);
    if (launchFFTConvPad<T>(s, u, pregate, buffer, stream) != cudaSuccess
        || cufftSetStream(forward, stream) != CUFFT_SUCCESS || cufftSetStream(inverse, stream) != CUFFT_SUCCESS
        || cufftExecR2C(forward, buffer, spectrum) != CUFFT_SUCCESS
        || launchFFTConvMultiply(s, static_cast<float2 const*>(in[kSPECTRUM]), spectrum, stream) != cudaSuccess
        || cufftExecC2R(inverse, spectrum, buffer) != CUFFT_SUCCESS
        || launchFFTConvFinish<T>(s, buffer, u, pregate, skip, postgate, static_cast<T*>(out), stream) != cudaSuccess)
    {
        logError("FFTConv: a CUDA kernel or cuFFT call failed in enqueue");
        return -1;
    }
    return 0;
}

} // namespace

FFTConvPlugin::FFTConvPlugin(int32_t fftSize)
    : mFftSize(fftSize)
{
}

FFTConvPlugin::~FFTConvPlugin()
{
    destroyPlans();
}

IPluginCapability* FFTConvPlugin::getCapabilityInterface(PluginCapabilityType type) noexcept
{
    switch (type)
    {
    case PluginCapabilityType::kBUILD: return static_cast<IPluginV3OneBuild*>(this);
    case PluginCapabilityType::kRUNTIME: return static_cast<IPluginV3OneRuntime*>(this);
    case PluginCapabilityType::kCORE: return static_cast<IPluginV3OneCore*>(this);
    }
    return nullptr;
}

IPluginV3* FFTConvPlugin::clone() noexcept
{
    auto* plugin = new (std::nothrow) FFTConvPlugin(mFftSize);
    if (plugin)
    {
        plugin->mNbInputs = mNbInputs;
    }
    return plugin;
}

char const* FFTConvPlugin::getPluginName() const noexcept
{
    return kName;
}

char const* FFTConvPlugin::getPluginVersion() const noexcept
{
    return kVersion;
}

char const* FFTConvPlugin::getPluginNamespace() const noexcept
{
    return kNamespace;
}

int32_t FFTConvPlugin::configurePlugin(
    DynamicPluginTensorDesc const* in, int32_t nbInputs, DynamicPluginTensorDesc const*, int32_t nbOutputs) noexcept
{
    if (nbInputs < 2 || nbInputs > 5 || nbOutputs != 1)
    {
        logError("FFTConv: expects 2 to 5 inputs and one output");
        return -1;
    }
    Dims const& signal = in[kSIGNAL].desc.dims;
    Dims const& spectrum = in[kSPECTRUM].desc.dims;
    bool const channelsMatch = signal.d[1] < 0 || spectrum.d[0] < 0 || signal.d[1] == spectrum.d[0];
    if (spectrum.nbDims != 3 || !channelsMatch || spectrum.d[1] != mFftSize / 2 + 1 || spectrum.d[2] != 2)
    {
        logError("FFTConv: spectrum must be (C, fft_size/2+1, 2) for a (B, C, L) signal");
        return -1;
    }
    if (in[kSIGNAL].max.d[2] > mFftSize / 2)
    {
        logError("FFTConv: the profile's maximum length exceeds fft_size/2");
        return -1;
    }
    mNbInputs = nbInputs;
    return 0;
}

int32_t FFTConvPlugin::getOutputDataTypes(
    DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    if (nbOutputs != 1 || nbInputs < 2)
    {
        return -1;
    }
    outputTypes[0] = inputTypes[kSIGNAL];
    return 0;
}

int32_t FFTConvPlugin::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const*, int32_t,
    DimsExprs* outputs, int32_t nbOutputs, IExprBuilder&) noexcept
{
    if (nbInputs < 2 || nbInputs > 5 || nbOutputs != 1 || inputs[kSIGNAL].nbDims != 3)
    {
        logError("FFTConv: expects 2 to 5 inputs and a (B, C, L) signal");
        return -1;
    }
    outputs[0] = inputs[kSIGNAL];
    return 0;
}

bool FFTConvPlugin::supportsFormatCombination(
    int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t) noexcept
{
    PluginTensorDesc const& desc = inOut[pos].desc;
    if (desc.format != TensorFormat::kLINEAR)
    {
        return false;
    }
    if (pos == kSIGNAL)
    {
        return desc.type == DataType::kFLOAT || desc.type == DataType::kHALF;
    }
    if (pos < nbInputs && (pos == kSPECTRUM || pos == kSKIP))
    {
        return desc.type == DataType::kFLOAT;
    }
    return desc.type == inOut[kSIGNAL].desc.type; // gates and the output (pos == nbInputs)
}

int32_t FFTConvPlugin::getNbOutputs() const noexcept
{
    return 1;
}

size_t FFTConvPlugin::getWorkspaceSize(
    DynamicPluginTensorDesc const* inputs, int32_t, DynamicPluginTensorDesc const*, int32_t) const noexcept
{
    Dims const& max = inputs[kSIGNAL].max;
    FFTConvShape const s{max.d[0], max.d[1], max.d[2], mFftSize};
    return s.rows() > 0 ? static_cast<size_t>(s.rows() * s.rowStride()) * sizeof(float) : 0;
}

int32_t FFTConvPlugin::onShapeChange(PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const*, int32_t) noexcept
{
    mNbInputs = nbInputs;
    Dims const& d = in[kSIGNAL].dims;
    if (d.d[2] > mFftSize / 2)
    {
        logError("FFTConv: signal length exceeds fft_size/2");
        return -1;
    }
    return d.d[0] * d.d[1] > 0 ? ensurePlans(d.d[0] * d.d[1]) : 0;
}

int32_t FFTConvPlugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const*,
    void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept
{
    Dims const& d = inputDesc[kSIGNAL].dims;
    FFTConvShape const s{d.d[0], d.d[1], d.d[2], mFftSize};
    if (s.rows() == 0 || s.length == 0)
    {
        return 0;
    }
    if (s.length > mFftSize / 2 || ensurePlans(s.rows()) != 0)
    {
        return -1;
    }
    bool present[5]{true, true, false, false, false};
    for (int32_t i = kSKIP; i < mNbInputs; ++i)
    {
        present[i] = inputs[i] != nullptr && volume(inputDesc[i].dims) > 0;
    }
    auto* buffer = static_cast<float*>(workspace);
    if (inputDesc[kSIGNAL].type == DataType::kHALF)
    {
        return runFFTConv<__half>(s, mForward, mInverse, inputs, present, outputs[0], buffer, stream);
    }
    return runFFTConv<float>(s, mForward, mInverse, inputs, present, outputs[0], buffer, stream);
}

IPluginV3* FFTConvPlugin::attachToContext(IPluginResourceContext*) noexcept
{
    return clone();
}

PluginFieldCollection const* FFTConvPlugin::getFieldsToSerialize() noexcept
{
    mSerialized = {PluginField("fft_size", &mFftSize, PluginFieldType::kINT32, 1)};
    mSerializedCollection.nbFields = static_cast<int32_t>(mSerialized.size());
    mSerializedCollection.fields = mSerialized.data();
    return &mSerializedCollection;
}

int32_t FFTConvPlugin::ensurePlans(int64_t rows) noexcept
{
    if (rows == mPlanRows)
    {
        return 0;
    }
    destroyPlans();
    FFTConvShape const s{rows, 1, 0, mFftSize};
    if (rows > INT_MAX || s.rowStride() > INT_MAX)
    {
        logError("FFTConv: too many transforms for one cuFFT plan");
        return -1;
    }
    // In-place layout: real rows of rowStride floats, complex rows of bins elements.
    int n[1] = {mFftSize};
    int realEmbed[1] = {static_cast<int>(s.rowStride())};
    int complexEmbed[1] = {static_cast<int>(s.bins())};
    int const batch = static_cast<int>(rows);
    if (cufftPlanMany(&mForward, 1, n, realEmbed, 1, realEmbed[0], complexEmbed, 1, complexEmbed[0], CUFFT_R2C, batch)
        != CUFFT_SUCCESS)
    {
        logError("FFTConv: cufftPlanMany (R2C) failed");
        return -1;
    }
    if (cufftPlanMany(&mInverse, 1, n, complexEmbed, 1, complexEmbed[0], realEmbed, 1, realEmbed[0], CUFFT_C2R, batch)
        != CUFFT_SUCCESS)
    {
        cufftDestroy(mForward);
        logError("FFTConv: cufftPlanMany (C2R) failed");
        return -1;
    }
    mPlanRows = rows;
    return 0;
}

void FFTConvPlugin::destroyPlans() noexcept
{
    if (mPlanRows != 0)
    {
        cufftDestroy(mForward);
        cufftDestroy(mInverse);
        mPlanRows = 0;
    }
}

FFTConvPluginCreator::FFTConvPluginCreator()
    : mFields{PluginField("fft_size", nullptr, PluginFieldType::kINT32, 1),
        PluginField("plugin_namespace", nullptr, PluginFieldType::kCHAR, 0),
        PluginField("plugin_version", nullptr, PluginFieldType::kCHAR, 0)}
{
    mFieldCollection.nbFields = static_cast<int32_t>(mFields.size());
    mFieldCollection.fields = mFields.data();
}

IPluginV3* FFTConvPluginCreator::createPlugin(char const*, PluginFieldCollection const* fc, TensorRTPhase) noexcept
{
    int64_t fftSize = 0;
    for (int32_t i = 0; fc != nullptr && i < fc->nbFields; ++i)
    {
        PluginField const& field = fc->fields[i];
        if (std::strcmp(field.name, "fft_size") != 0 || field.length != 1)
        {
            continue;
        }
        if (field.type == PluginFieldType::kINT32)
        {
            fftSize = *static_cast<int32_t const*>(field.data);
        }
        else if (field.type == PluginFieldType::kINT64)
        {
            fftSize = *static_cast<int64_t const*>(field.data);
        }
    }
    if (fftSize < 2 || fftSize > INT_MAX - 2)
    {
        logError("FFTConv: field fft_size (int32 >= 2) is missing or invalid");
        return nullptr;
    }
    return new (std::nothrow) FFTConvPlugin(static_cast<int32_t>(fftSize));
}

PluginFieldCollection const* FFTConvPluginCreator::getFieldNames() noexcept
{
    return &mFieldCollection;
}

char const* FFTConvPluginCreator::getPluginName() const noexcept
{
    return kName;
}

char const* FFTConvPluginCreator::getPluginVersion() const noexcept
{
    return kVersion;
}

char const* FFTConvPluginCreator::getPluginNamespace() const noexcept
{
    return kNamespace;
}

} // namespace hyena_deploy

extern "C" __attribute__((visibility("default"))) IPluginCreatorInterface* const* getCreators(int32_t& nbCreators)
{
    static hyena_deploy::FFTConvPluginCreator creator;
    static IPluginCreatorInterface* const creators[] = {&creator};
    nbCreators = 1;
    return creators;
}

extern "C" __attribute__((visibility("default"))) void setLoggerFinder(ILoggerFinder* finder)
{
    std::lock_guard<std::mutex> lock(hyena_deploy::gLoggerMutex);
    hyena_deploy::gLoggerFinder = finder;
}

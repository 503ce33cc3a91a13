// Host-only checks of libhyena_fftconv_plugin.so, no GPU needed: loads it like TensorRT does
// (dlopen + getCreators/setLoggerFinder) and exercises the creator and the build-time interface.
// Usage: test_plugin_host path/to/libhyena_fftconv_plugin.so
#include "NvInferRuntime.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <string>

using namespace nvinfer1;

namespace
{

int gFailures = 0;

void check(bool ok, char const* what)
{
    std::printf("%s %s\n", ok ? "ok  " : "FAIL", what);
    gFailures += ok ? 0 : 1;
}

struct Logger : ILogger
{
    int errors = 0;
    void log(Severity severity, char const* message) noexcept override
    {
        errors += severity == Severity::kERROR ? 1 : 0;
        std::printf("     logged: %s\n", message);
    }
};

struct Finder : ILoggerFinder
{
    Logger logger;
    ILogger* findLogger() override { return &logger; }
};

DynamicPluginTensorDesc tensor(std::initializer_list<int64_t> dims, DataType type, std::initializer_list<int64_t> max = {})
{
    DynamicPluginTensorDesc t{};
    int32_t i = 0;
    for (int64_t d : dims)
    {
        t.desc.dims.d[i++] = d;
    }
    t.desc.dims.nbDims = i;
    t.max = t.desc.dims;
    i = 0;
    for (int64_t d : max)
    {
        t.max.d[i++] = d;
    }
    t.desc.type = type;
    t.desc.format = TensorFormat::kLINEAR;
    return t;
}

} // namespace

int main(int argc, char** argv)
{
    void* library = argc == 2 ? dlopen(argv[1], RTLD_NOW) : nullptr;
    if (!library)
    {
        std::printf("cannot load the plugin library: %s\n", argc == 2 ? dlerror() : "no path given");
        return 2;
    }
    auto getCreators = reinterpret_cast<IPluginCreatorInterface* const* (*) (int32_t&)>(dlsym(library, "getCreators"));
    auto setLoggerFinder = reinterpret_cast<void (*)(ILoggerFinder*)>(dlsym(library, "setLoggerFinder"));
    check(getCreators && setLoggerFinder, "exports getCreators and setLoggerFinder");
    if (!getCreators || !setLoggerFinder)
    {
        return 1;
    }
    Finder finder;
    setLoggerFinder(&finder);
    int32_t count = 0;
    IPluginCreatorInterface* const* creators = getCreators(count);
    check(count == 1 && std::strcmp(creators[0]->getInterfaceInfo().kind, "PLUGIN CREATOR_V3ONE") == 0,
        "one IPluginCreatorV3One");
    auto* creator = static_cast<IPluginCreatorV3One*>(creators[0]);
    check(std::strcmp(creator->getPluginName(), "FFTConv") == 0 && std::strcmp(creator->getPluginVersion(), "1") == 0
            && std::strcmp(creator->getPluginNamespace(), "hyena_deploy") == 0,
        "creator is FFTConv / 1 / hyena_deploy");
    PluginFieldCollection const* names = creator->getFieldNames();
    check(names->nbFields == 3 && std::strcmp(names->fields[0].name, "fft_size") == 0
            && names->fields[0].type == PluginFieldType::kINT32,
        "fields: fft_size (kINT32), plugin_namespace, plugin_version");

    // Fields as the ONNX parser passes them: INT -> kINT32, STRING -> kCHAR (not NUL-terminated).
    int32_t fftSize = 128;
    std::string const ns = "hyena_deploy";
    PluginField fields[] = {PluginField("plugin_namespace", ns.data(), PluginFieldType::kCHAR, int32_t(ns.size())),
        PluginField("fft_size", &fftSize, PluginFieldType::kINT32, 1),
        PluginField("plugin_version", "1", PluginFieldType::kCHAR, 1)};
    PluginFieldCollection parsed{3, fields};
    PluginFieldCollection empty{0, nullptr};
    check(creator->createPlugin("missing", &empty, TensorRTPhase::kBUILD) == nullptr && finder.logger.errors == 1,
        "no fft_size: nullptr and an error logged");
    std::unique_ptr<IPluginV3> plugin(creator->createPlugin("node", &parsed, TensorRTPhase::kBUILD));
    check(plugin != nullptr, "createPlugin from parser fields");
    if (!plugin)
    {
        return 1;
    }
    auto* core = static_cast<IPluginV3OneCore*>(plugin->getCapabilityInterface(PluginCapabilityType::kCORE));
    auto* build = static_cast<IPluginV3OneBuild*>(plugin->getCapabilityInterface(PluginCapabilityType::kBUILD));
    auto* runtime = static_cast<IPluginV3OneRuntime*>(plugin->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    check(std::strcmp(core->getInterfaceInfo().kind, "PLUGIN_V3ONE_CORE") == 0
            && std::strcmp(build->getInterfaceInfo().kind, "PLUGIN_V3ONE_BUILD") == 0
            && std::strcmp(runtime->getInterfaceInfo().kind, "PLUGIN_V3ONE_RUNTIME") == 0,
        "core, build and runtime capabilities");

    PluginFieldCollection const* serialized = runtime->getFieldsToSerialize();
    std::unique_ptr<IPluginV3> restored(creator->createPlugin("node", serialized, TensorRTPhase::kRUNTIME));
    check(serialized->nbFields == 1 && *static_cast<int32_t const*>(serialized->fields[0].data) == 128 && restored,
        "serialized fields recreate the plugin");

    DataType inTypes[] = {DataType::kHALF, DataType::kFLOAT};
    DataType outType{};
    check(build->getOutputDataTypes(&outType, 1, inTypes, 2) == 0 && outType == DataType::kHALF,
        "output type = signal type");

    DynamicPluginTensorDesc io[] = {tensor({-1, 4, -1}, DataType::kFLOAT, {8, 4, 64}),
        tensor({4, 65, 2}, DataType::kFLOAT), tensor({-1, 4, -1}, DataType::kFLOAT)};
    bool formats = build->supportsFormatCombination(0, io, 2, 1) && build->supportsFormatCombination(1, io, 2, 1)
        && build->supportsFormatCombination(2, io, 2, 1);
    io[2].desc.type = DataType::kHALF;
    formats = formats && !build->supportsFormatCombination(2, io, 2, 1);
    io[0].desc.type = DataType::kHALF;
    formats = formats && build->supportsFormatCombination(2, io, 2, 1);
    io[0].desc.type = DataType::kINT32;
    formats = formats && !build->supportsFormatCombination(0, io, 2, 1);
    check(formats, "formats: float|half signal, float spectrum, output like the signal");

    io[0].desc.type = DataType::kFLOAT;
    io[2].desc.type = DataType::kFLOAT;
    check(build->configurePlugin(io, 2, io + 2, 1) == 0, "configurePlugin accepts (B, 4, L<=64) with (4, 65, 2)");
    check(build->getWorkspaceSize(io, 2, io + 2, 1) == size_t{8} * 4 * 130 * sizeof(float),
        "workspace = max rows * (N + 2) floats");
    DynamicPluginTensorDesc wrongSpectrum[] = {io[0], tensor({4, 64, 2}, DataType::kFLOAT)};
    DynamicPluginTensorDesc tooLong[] = {tensor({-1, 4, -1}, DataType::kFLOAT, {8, 4, 65}), io[1]};
    check(build->configurePlugin(wrongSpectrum, 2, io + 2, 1) != 0 && build->configurePlugin(tooLong, 2, io + 2, 1) != 0,
        "configurePlugin rejects a wrong spectrum and L > fft_size/2");

    std::printf("%s\n", gFailures == 0 ? "all host checks passed" : "host checks FAILED");
    return gFailures == 0 ? 0 : 1;
}

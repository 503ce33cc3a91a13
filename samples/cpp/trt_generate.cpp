// Greedy generation from a hyena-deploy stateful export directory with the TensorRT C++ runtime (10+).
//
// The engine is built from the directory's decode.onnx (`hyena-deploy build DIR/decode.onnx`, with an
// optimization profile covering batch 1 and chunk lengths 1..prompt length). Every state lives in two device
// buffers: each call reads one and writes the other, and the two are swapped, so states never leave the GPU.
// Only the token ids go up and the last logits row comes down per call.
//
//   trt_generate DIR --prompt-ids 1,2,3 --max-new-tokens 16 [--engine DIR/decode.engine]

#include <NvInfer.h>
#include <cuda_runtime_api.h>

#include <chrono>
#include <iostream>
#include <iterator>
#include <memory>
#include <utility>
#include <vector>

#include "stateful_layout.hpp"

namespace {

class Logger : public nvinfer1::ILogger {
  void log(Severity severity, const char* message) noexcept override {
    if (severity <= Severity::kWARNING) std::cerr << "TensorRT: " << message << "\n";
  }
};

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(status));
}

struct DeviceBuffer {
  void* ptr = nullptr;
  explicit DeviceBuffer(size_t bytes) { check(cudaMalloc(&ptr, bytes), "cudaMalloc"); }
  ~DeviceBuffer() { cudaFree(ptr); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

nvinfer1::Dims dims_of(std::vector<int64_t> shape) {
  nvinfer1::Dims dims{};
  dims.nbDims = static_cast<int32_t>(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) dims.d[i] = shape[i];
  return dims;
}

std::vector<int64_t> generate(const hyena::Arguments& args, const hyena::StatefulLayout& layout) {
  const std::string engine_path = args.engine.empty() ? args.directory + "/decode.engine" : args.engine;
  std::ifstream file(engine_path, std::ios::binary);
  if (!file) throw std::runtime_error(engine_path + ": no engine (build it with hyena-deploy build DIR/decode.onnx)");
  std::vector<char> blob((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());

  Logger logger;
  std::unique_ptr<nvinfer1::IRuntime> runtime(nvinfer1::createInferRuntime(logger));
  std::unique_ptr<nvinfer1::ICudaEngine> engine(runtime->deserializeCudaEngine(blob.data(), blob.size()));
  if (!engine) throw std::runtime_error(engine_path + ": TensorRT could not deserialize it (see its log)");
  std::unique_ptr<nvinfer1::IExecutionContext> context(engine->createExecutionContext());
  if (!context) throw std::runtime_error("TensorRT could not create an execution context");
  cudaStream_t stream;
  check(cudaStreamCreate(&stream), "cudaStreamCreate");

  const int64_t longest = static_cast<int64_t>(args.prompt.size());
  const int64_t vocab = layout.vocab_size;
  DeviceBuffer ids(sizeof(int64_t) * longest), logits(sizeof(float) * longest * vocab);
  std::vector<std::unique_ptr<DeviceBuffer>> reads, writes;
  for (const auto& state : layout.states) {
    reads.push_back(std::make_unique<DeviceBuffer>(hyena::state_bytes(state)));
    writes.push_back(std::make_unique<DeviceBuffer>(hyena::state_bytes(state)));
    check(cudaMemsetAsync(reads.back()->ptr, 0, hyena::state_bytes(state), stream), "cudaMemsetAsync");  // fresh start
  }

  std::vector<int64_t> chunk = args.prompt, generated;
  std::vector<float> last_row(vocab);
  hyena::Timer timer;
  for (int step = 0; step < args.max_new_tokens; ++step) {
    const int64_t length = static_cast<int64_t>(chunk.size());
    check(cudaMemcpyAsync(ids.ptr, chunk.data(), sizeof(int64_t) * length, cudaMemcpyHostToDevice, stream), "upload");
    if (!context->setInputShape(layout.input_ids.c_str(), dims_of({1, length}))) {
      throw std::runtime_error("chunk length " + std::to_string(length) + " is outside the engine's profile");
    }
    context->setTensorAddress(layout.input_ids.c_str(), ids.ptr);
    context->setTensorAddress(layout.logits.c_str(), logits.ptr);
    for (size_t i = 0; i < layout.states.size(); ++i) {
      std::vector<int64_t> shape{1};
      shape.insert(shape.end(), layout.states[i].dims.begin(), layout.states[i].dims.end());
      context->setInputShape(layout.states[i].input.c_str(), dims_of(shape));
      context->setTensorAddress(layout.states[i].input.c_str(), reads[i]->ptr);
      context->setTensorAddress(layout.states[i].output.c_str(), writes[i]->ptr);
    }
    if (!context->enqueueV3(stream)) throw std::runtime_error("TensorRT enqueueV3 failed (see its log)");
    check(cudaMemcpyAsync(last_row.data(), static_cast<float*>(logits.ptr) + (length - 1) * vocab,
                          sizeof(float) * vocab, cudaMemcpyDeviceToHost, stream), "download");
    check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
    const int64_t token = hyena::argmax(last_row.data(), vocab);
    generated.push_back(token);
    std::swap(reads, writes);  // this call's output states are the next call's input states
    chunk.assign(1, token);
    timer.lap();
  }
  timer.report();
  cudaStreamDestroy(stream);
  return generated;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const hyena::Arguments args = hyena::parse_arguments(argc, argv, true);
    const hyena::StatefulLayout layout = hyena::read_layout(args.directory);
    hyena::check_prompt(args, layout);
    const std::vector<int64_t> tokens = generate(args, layout);
    for (size_t i = 0; i < tokens.size(); ++i) std::cout << (i ? "," : "") << tokens[i];
    std::cout << "\n";
    return 0;
  } catch (const std::exception& error) {
    std::cerr << "error: " << error.what() << "\n";
  }
  return 1;
}

// Greedy generation from a hyena-deploy stateful export directory with the ONNX Runtime C++ API.
//
// decode.onnx takes the token ids of a chunk plus every state and returns the chunk's logits plus the states
// after it; all-zero states are a fresh start. The prompt goes in one call, then one token per call. With
// IO binding the output states stay in the buffers ONNX Runtime allocated for them and are bound, without a
// copy, as the next call's input states.
//
//   ort_generate DIR --prompt-ids 1,2,3 --max-new-tokens 16 [--threads 1]
// prints the generated token ids on one line, comma-separated (as `hyena-deploy generate` does).

#include <onnxruntime_cxx_api.h>

#include <chrono>
#include <iostream>
#include <vector>

#include "stateful_layout.hpp"

namespace {

ONNXTensorElementDataType onnx_type(const std::string& dtype) {
  if (dtype == "float32") return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
  if (dtype == "float16") return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16;
  if (dtype == "int64") return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64;
  if (dtype == "int32") return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32;
  throw std::runtime_error("state dtype " + dtype + " is not handled by this sample");
}

std::vector<int64_t> generate(const hyena::Arguments& args, const hyena::StatefulLayout& layout) {
  Ort::Env env(ORT_LOGGING_LEVEL_WARNING, "ort_generate");
  Ort::SessionOptions options;
  options.SetIntraOpNumThreads(args.threads);
  options.SetGraphOptimizationLevel(GraphOptimizationLevel::ORT_ENABLE_ALL);
  Ort::Session session(env, layout.decode_path.c_str(), options);
  Ort::MemoryInfo cpu = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);

  // Zero states for one sequence; after the first call they are replaced by ORT-owned outputs.
  std::vector<std::vector<uint8_t>> zeros;
  std::vector<Ort::Value> states;
  for (const auto& state : layout.states) {
    std::vector<int64_t> shape{1};
    shape.insert(shape.end(), state.dims.begin(), state.dims.end());
    zeros.emplace_back(hyena::state_bytes(state), 0);
    states.push_back(Ort::Value::CreateTensor(cpu, zeros.back().data(), zeros.back().size(), shape.data(),
                                              shape.size(), onnx_type(state.dtype)));
  }

  Ort::IoBinding binding(session);
  Ort::RunOptions run_options;
  std::vector<int64_t> ids = args.prompt, generated;
  hyena::Timer timer;
  for (int step = 0; step < args.max_new_tokens; ++step) {
    std::vector<int64_t> ids_shape{1, static_cast<int64_t>(ids.size())};
    Ort::Value ids_value = Ort::Value::CreateTensor<int64_t>(cpu, ids.data(), ids.size(), ids_shape.data(), 2);
    binding.ClearBoundInputs();
    binding.ClearBoundOutputs();
    binding.BindInput(layout.input_ids.c_str(), ids_value);
    binding.BindOutput(layout.logits.c_str(), cpu);
    for (size_t i = 0; i < layout.states.size(); ++i) {
      binding.BindInput(layout.states[i].input.c_str(), states[i]);
      binding.BindOutput(layout.states[i].output.c_str(), cpu);
    }
    session.Run(run_options, binding);
    std::vector<Ort::Value> outputs = binding.GetOutputValues();  // in binding order: logits, then the states
    const auto shape = outputs[0].GetTensorTypeAndShapeInfo().GetShape();  // (1, T, vocab)
    const float* logits = outputs[0].GetTensorData<float>();
    const int64_t vocab = shape[2];
    const int64_t token = hyena::argmax(logits + (shape[1] - 1) * vocab, vocab);
    generated.push_back(token);
    for (size_t i = 0; i < layout.states.size(); ++i) states[i] = std::move(outputs[1 + i]);
    ids.assign(1, token);
    timer.lap();
  }
  timer.report();
  return generated;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const hyena::Arguments args = hyena::parse_arguments(argc, argv, false);
    const hyena::StatefulLayout layout = hyena::read_layout(args.directory);
    hyena::check_prompt(args, layout);
    const std::vector<int64_t> tokens = generate(args, layout);
    for (size_t i = 0; i < tokens.size(); ++i) std::cout << (i ? "," : "") << tokens[i];
    std::cout << "\n";
    return 0;
  } catch (const Ort::Exception& error) {
    std::cerr << "error: ONNX Runtime: " << error.what() << "\n";
  } catch (const std::exception& error) {
    std::cerr << "error: " << error.what() << "\n";
  }
  return 1;
}

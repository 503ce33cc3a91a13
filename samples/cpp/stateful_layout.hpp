// Reads a stateful export directory's hyena_deploy.json (contract C1 of hyena-deploy): the decode graph,
// the input-ids / logits names, and every state tensor (input and output names, per-sequence dims, dtype).
// A minimal JSON reader keeps the samples free of third-party dependencies beyond the runtimes themselves.
#pragma once

#include <cctype>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace hyena {

struct Json {
  enum class Kind { Null, Bool, Number, String, Array, Object } kind = Kind::Null;
  bool boolean = false;
  double number = 0.0;
  std::string text;
  std::vector<Json> items;
  std::map<std::string, Json> fields;

  const Json& at(const std::string& key) const {
    auto found = fields.find(key);
    if (kind != Kind::Object || found == fields.end()) throw std::runtime_error("hyena_deploy.json lacks \"" + key + "\"");
    return found->second;
  }
};

class JsonParser {
 public:
  explicit JsonParser(const std::string& text) : text_(text) {}

  Json parse() {
    Json value = parse_value();
    skip_space();
    if (pos_ != text_.size()) fail("trailing characters");
    return value;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error("hyena_deploy.json: " + what + " at byte " + std::to_string(pos_));
  }
  void skip_space() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }
  bool take(char c) {
    skip_space();
    if (pos_ < text_.size() && text_[pos_] == c) { ++pos_; return true; }
    return false;
  }
  void expect(char c) { if (!take(c)) fail(std::string("expected '") + c + "'"); }
  bool take_word(const char* word) {
    std::string w(word);
    if (text_.compare(pos_, w.size(), w) == 0) { pos_ += w.size(); return true; }
    return false;
  }

  Json parse_value() {
    skip_space();
    if (pos_ >= text_.size()) fail("unexpected end");
    Json value;
    char c = text_[pos_];
    if (c == '{') {
      ++pos_;
      value.kind = Json::Kind::Object;
      if (take('}')) return value;
      do {
        skip_space();
        std::string key = parse_string();
        expect(':');
        value.fields[key] = parse_value();
      } while (take(','));
      expect('}');
    } else if (c == '[') {
      ++pos_;
      value.kind = Json::Kind::Array;
      if (take(']')) return value;
      do { value.items.push_back(parse_value()); } while (take(','));
      expect(']');
    } else if (c == '"') {
      value.kind = Json::Kind::String;
      value.text = parse_string();
    } else if (take_word("null")) {
    } else if (take_word("true")) {
      value.kind = Json::Kind::Bool; value.boolean = true;
    } else if (take_word("false")) {
      value.kind = Json::Kind::Bool;
    } else {
      size_t used = 0;
      value.kind = Json::Kind::Number;
      try { value.number = std::stod(text_.substr(pos_, 64), &used); } catch (const std::exception&) { fail("bad value"); }
      pos_ += used;
    }
    return value;
  }

  std::string parse_string() {
    if (pos_ >= text_.size() || text_[pos_] != '"') fail("expected a string");
    std::string out;
    for (++pos_; pos_ < text_.size() && text_[pos_] != '"'; ++pos_) {
      if (text_[pos_] != '\\') { out += text_[pos_]; continue; }
      if (++pos_ >= text_.size()) break;
      switch (char e = text_[pos_]) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'u': out += '?'; pos_ += 4; break;  // names in the layout are ASCII; other text is not used
        default: out += e;
      }
    }
    if (pos_ >= text_.size()) fail("unterminated string");
    ++pos_;
    return out;
  }

  const std::string& text_;
  size_t pos_ = 0;
};

struct StateTensor {
  std::string input, output, dtype;
  std::vector<int64_t> dims;  // per sequence: the layout's shape without its leading "batch" axis
};

struct StatefulLayout {
  std::string decode_path, input_ids, logits;
  int64_t vocab_size = 0, max_context = 0;
  std::vector<StateTensor> states;
};

inline size_t element_size(const std::string& dtype) {
  if (dtype == "float32" || dtype == "int32") return 4;
  if (dtype == "int64" || dtype == "float64") return 8;
  if (dtype == "float16" || dtype == "bfloat16") return 2;
  throw std::runtime_error("state dtype " + dtype + " is not handled by this sample");
}

inline StatefulLayout read_layout(const std::string& directory) {
  std::ifstream file(directory + "/hyena_deploy.json");
  if (!file) throw std::runtime_error(directory + ": no hyena_deploy.json (export with --stateful)");
  std::stringstream buffer;
  buffer << file.rdbuf();
  const std::string text = buffer.str();
  Json root = JsonParser(text).parse();
  if (root.at("format").text != "hyena-deploy-stateful") throw std::runtime_error("not a hyena-deploy-stateful layout");
  StatefulLayout layout;
  layout.decode_path = directory + "/" + root.at("graphs").at("decode").text;
  layout.input_ids = root.at("input_ids").text;
  layout.logits = root.at("logits").text;
  layout.vocab_size = static_cast<int64_t>(root.at("vocab_size").number);
  layout.max_context = static_cast<int64_t>(root.at("max_context").number);
  for (const Json& entry : root.at("states").items) {
    StateTensor state{entry.at("input").text, entry.at("output").text, entry.at("dtype").text, {}};
    const auto& shape = entry.at("shape").items;
    if (shape.empty() || shape[0].kind != Json::Kind::String) {
      throw std::runtime_error("state " + state.input + ": the batch axis must come first");
    }
    for (size_t i = 1; i < shape.size(); ++i) state.dims.push_back(static_cast<int64_t>(shape[i].number));
    layout.states.push_back(state);
  }
  return layout;
}

inline size_t state_bytes(const StateTensor& state) {
  size_t count = 1;
  for (int64_t d : state.dims) count *= static_cast<size_t>(d);
  return count * element_size(state.dtype);
}

struct Arguments {
  std::string directory, engine;
  std::vector<int64_t> prompt;
  int max_new_tokens = 16, threads = 1;
};

inline Arguments parse_arguments(int argc, char** argv, bool wants_engine) {
  Arguments args;
  const std::string usage = std::string("usage: ") + argv[0] + " DIR --prompt-ids 1,2,3 [--max-new-tokens N]" +
                            (wants_engine ? " [--engine DIR/decode.engine]" : " [--threads K]");
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(arg + " needs a value; " + usage);
      return argv[++i];
    };
    if (arg == "--prompt-ids") {
      std::stringstream list(next());
      for (std::string item; std::getline(list, item, ',');) if (!item.empty()) args.prompt.push_back(std::stoll(item));
    } else if (arg == "--max-new-tokens") {
      args.max_new_tokens = std::stoi(next());
    } else if (arg == "--threads" && !wants_engine) {
      args.threads = std::stoi(next());
    } else if (arg == "--engine" && wants_engine) {
      args.engine = next();
    } else if (args.directory.empty() && arg.rfind("--", 0) != 0) {
      args.directory = arg;
    } else {
      throw std::runtime_error("unknown argument " + arg + "; " + usage);
    }
  }
  if (args.directory.empty() || args.prompt.empty()) throw std::runtime_error(usage);
  if (args.max_new_tokens < 1) throw std::runtime_error("--max-new-tokens must be >= 1");
  return args;
}

inline void check_prompt(const Arguments& args, const StatefulLayout& layout) {
  for (int64_t id : args.prompt) {
    if (id < 0 || id >= layout.vocab_size) {
      throw std::runtime_error("prompt token " + std::to_string(id) + " is outside the vocabulary 0.." +
                               std::to_string(layout.vocab_size - 1));
    }
  }
  if (static_cast<int64_t>(args.prompt.size()) + args.max_new_tokens > layout.max_context) {
    throw std::runtime_error("prompt + new tokens exceed the max context " + std::to_string(layout.max_context));
  }
}

// Times the prompt call and the one-token calls; reports on stderr as `hyena-deploy generate` does.
class Timer {
 public:
  void lap() {
    const auto now = std::chrono::steady_clock::now();
    laps_.push_back(std::chrono::duration<double, std::milli>(now - last_).count());
    last_ = now;
  }
  void report() const {
    if (laps_.empty()) return;
    double decode = 0.0;
    for (size_t i = 1; i < laps_.size(); ++i) decode += laps_[i];
    std::cerr.setf(std::ios::fixed);
    std::cerr.precision(2);
    std::cerr << "prefill " << laps_[0] << " ms; decode "
              << (laps_.size() > 1 ? decode / static_cast<double>(laps_.size() - 1) : 0.0) << " ms/token\n";
  }

 private:
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
  std::vector<double> laps_;
};

template <typename T>
int64_t argmax(const T* row, int64_t count) {
  int64_t best = 0;
  for (int64_t i = 1; i < count; ++i) if (row[i] > row[best]) best = i;
  return best;
}

}  // namespace hyena

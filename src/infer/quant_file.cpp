// Quantised checkpoint directories (format in quant_file.h). The core DType
// has no 8-bit types, so this file carries its own small safetensors writer
// and reader for I8/U8/BF16/F32 entries.
#include "infer/quant_file.h"

#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/model_dir.h"
#include "model/param_layout.h"

namespace hessgpt::infer {
namespace fs = std::filesystem;
namespace {

struct Entry {
  std::string dtype;  // "F32" | "I8" | "U8" | "BF16"
  std::vector<int64_t> shape;
  const void* data = nullptr;
  size_t bytes = 0;
};

void write_file_atomic(const std::string& path, const std::string& head, const std::vector<Entry>* entries) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) HG_FAIL("cannot write '", tmp, "'");
    out.write(head.data(), static_cast<std::streamsize>(head.size()));
    if (entries)
      for (const Entry& e : *entries) out.write(static_cast<const char*>(e.data), static_cast<std::streamsize>(e.bytes));
    if (!out.flush()) HG_FAIL("write to '", tmp, "' failed (disk full?)");
  }
  fsync_path(tmp);
  fs::rename(tmp, path);
}

void write_quant_safetensors(const std::string& path, const std::vector<std::pair<std::string, Entry>>& items) {
  nlohmann::json header = nlohmann::json::object();
  header["__metadata__"] = {{"format", "hessgpt-quantized"}};
  size_t offset = 0;
  std::vector<Entry> ordered;
  for (const auto& [name, e] : items) {
    header[name] = {{"dtype", e.dtype}, {"shape", e.shape}, {"data_offsets", {offset, offset + e.bytes}}};
    offset += e.bytes;
    ordered.push_back(e);
  }
  std::string text = header.dump();
  while ((text.size() + 8) % 8 != 0) text.push_back(' ');  // keep the data 8-byte aligned
  std::string head(8, '\0');
  const uint64_t n = text.size();
  std::memcpy(head.data(), &n, 8);
  head += text;
  write_file_atomic(path, head, &ordered);
}

class QuantReader {
 public:
  explicit QuantReader(const std::string& path) : path_(path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) HG_FAIL("cannot open '", path, "'");
    in.seekg(0, std::ios::end);
    const auto size = static_cast<size_t>(in.tellg());
    in.seekg(0);
    bytes_.resize(size);
    in.read(reinterpret_cast<char*>(bytes_.data()), static_cast<std::streamsize>(size));
    if (size < 8) HG_FAIL("'", path, "' is too short to be a safetensors file");
    uint64_t n = 0;
    std::memcpy(&n, bytes_.data(), 8);
    if (n > size - 8) HG_FAIL("'", path, "': header length ", n, " exceeds the file");
    nlohmann::json h;
    try {
      h = nlohmann::json::parse(bytes_.begin() + 8, bytes_.begin() + 8 + static_cast<int64_t>(n));
    } catch (const std::exception& e) {
      HG_FAIL("'", path, "': malformed header: ", e.what());
    }
    data0_ = 8 + n;
    for (const auto& [name, v] : h.items()) {
      if (name == "__metadata__") continue;
      Entry e;
      e.dtype = v.at("dtype").get<std::string>();
      e.shape = v.at("shape").get<std::vector<int64_t>>();
      const auto off = v.at("data_offsets").get<std::vector<uint64_t>>();
      if (off.size() != 2 || off[0] > off[1] || data0_ + off[1] > size)
        HG_FAIL("'", path, "': tensor ", name, " lies outside the file");
      e.data = bytes_.data() + data0_ + off[0];
      e.bytes = off[1] - off[0];
      entries_[name] = e;
    }
  }

  const Entry& get(const std::string& name, const std::string& dtype,
                   const std::vector<int64_t>& shape) const {
    const auto it = entries_.find(name);
    if (it == entries_.end()) HG_FAIL("'", path_, "': tensor ", name, " is missing");
    const Entry& e = it->second;
    if (e.dtype != dtype) HG_FAIL("'", path_, "': tensor ", name, " is ", e.dtype, ", expected ", dtype);
    if (e.shape != shape) HG_FAIL("'", path_, "': tensor ", name, " has the wrong shape");
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    const size_t elem = dtype == "F32" ? 4 : dtype == "BF16" ? 2 : 1;
    if (e.bytes != static_cast<size_t>(n) * elem)
      HG_FAIL("'", path_, "': tensor ", name, " has ", e.bytes, " bytes, expected ", n * static_cast<int64_t>(elem));
    return e;
  }
  size_t count() const { return entries_.size(); }

 private:
  std::string path_;
  std::vector<uint8_t> bytes_;
  size_t data0_ = 0;
  std::map<std::string, Entry> entries_;
};

const char* q_dtype(WeightFormat f) {
  return f == WeightFormat::Q8 ? "I8" : f == WeightFormat::Q4 ? "U8" : "BF16";
}

int64_t groups_of(int64_t cols, int64_t g) { return (cols + g - 1) / g; }

std::vector<int64_t> q_shape(WeightFormat f, int64_t rows, int64_t cols, int64_t g) {
  if (f == WeightFormat::Q4) return {rows, groups_of(cols, g) * g / 2};
  return {rows, cols};
}

std::vector<int64_t> scales_shape(WeightFormat f, int64_t rows, int64_t cols, int64_t g) {
  if (f == WeightFormat::Q4) return {rows, groups_of(cols, g)};
  return {rows};
}

// Every matrix and norm with its SPEC §5 name, in layout order.
template <typename W, typename FM, typename FN>
void for_each_tensor(W& w, const ParamLayout& lay, FM&& on_matrix, FN&& on_norm) {
  const auto name = [&](int i) { return lay.params[static_cast<size_t>(i)].name; };
  on_matrix(name(lay.embed), w.embed);
  for (size_t l = 0; l < lay.layers.size(); ++l) {
    const LayerParamIndex& p = lay.layers[l];
    auto& L = w.layers[l];
    on_norm(name(p.input_norm), L.input_norm);
    on_matrix(name(p.q_proj), L.q_proj);
    on_matrix(name(p.k_proj), L.k_proj);
    on_matrix(name(p.v_proj), L.v_proj);
    if (p.q_norm >= 0) on_norm(name(p.q_norm), L.q_norm);
    if (p.k_norm >= 0) on_norm(name(p.k_norm), L.k_norm);
    on_matrix(name(p.o_proj), L.o_proj);
    on_norm(name(p.post_norm), L.post_norm);
    on_matrix(name(p.gate_proj), L.gate_proj);
    on_matrix(name(p.up_proj), L.up_proj);
    on_matrix(name(p.down_proj), L.down_proj);
  }
  on_norm(name(lay.final_norm), w.final_norm);
}

}  // namespace

bool is_quantized_dir(const std::string& dir) {
  const fs::path config = fs::path(dir) / "config.json";
  if (!fs::exists(config)) return false;
  std::ifstream in(config);
  try {
    const nlohmann::json j = nlohmann::json::parse(in);
    return j.contains("quantization") && j.at("quantization").is_object();
  } catch (const std::exception&) {
    return false;  // load_model_dir reports the malformed file
  }
}

void save_quantized_dir(const InferWeights& w, const std::string& dir) {
  if (w.format == WeightFormat::F32) HG_FAIL("save_quantized_dir: the weights are FP32");
  fs::create_directories(dir);
  const ParamLayout lay = make_param_layout(w.config);
  std::vector<std::pair<std::string, Entry>> items;
  std::deque<std::vector<uint8_t>> file_bytes;  // stable addresses for the entries
  for_each_tensor(
      w, lay,
      [&](const std::string& name, const QuantMatrix& m) {
        const std::vector<uint8_t>& q = file_bytes.emplace_back(m.file_bytes());
        items.push_back({name + ".q", Entry{q_dtype(m.format()), q_shape(m.format(), m.rows(), m.cols(), m.group_size()), q.data(),
                                            q.size()}});
        if (!m.scales().empty())
          items.push_back({name + ".scales", Entry{"F32", scales_shape(m.format(), m.rows(), m.cols(), m.group_size()), m.scales().data(),
                                                   m.scales().size() * sizeof(float)}});
      },
      [&](const std::string& name, const std::vector<float>& v) {
        items.push_back({name, Entry{"F32", {static_cast<int64_t>(v.size())}, v.data(), v.size() * sizeof(float)}});
      });
  write_quant_safetensors((fs::path(dir) / "model.safetensors").string(), items);
  nlohmann::json config = config_to_json(w.config);
  config["quantization"] = {{"bits", weight_format_bits(w.format)},
                            {"format", weight_format_name(w.format)},
                            {"scheme", "symmetric"}};
  if (w.format == WeightFormat::Q4) config["quantization"]["group_size"] = w.group_size;
  write_file_atomic((fs::path(dir) / "config.json").string(), config.dump(2) + "\n", nullptr);
}

InferWeights load_quantized_dir(const std::string& dir) {
  const std::string config_path = (fs::path(dir) / "config.json").string();
  const std::string weights_path = (fs::path(dir) / "model.safetensors").string();
  if (!fs::exists(config_path)) HG_FAIL("checkpoint '", dir, "' has no config.json");
  if (!fs::exists(weights_path)) HG_FAIL("checkpoint '", dir, "' has no model.safetensors");
  std::ifstream in(config_path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    HG_FAIL("'", config_path, "': ", e.what());
  }
  InferWeights w;
  w.config = config_from_json(j);
  const nlohmann::json& q = j.at("quantization");
  if (!q.contains("bits") || !q.at("bits").is_number_integer())
    HG_FAIL("'", config_path, "': quantization.bits is missing");
  w.format = weight_format_from_bits(q.at("bits").get<int>());
  if (w.format == WeightFormat::F32) HG_FAIL("'", config_path, "': quantization.bits 32 is not quantised");
  if (w.format == WeightFormat::Q4) {
    if (!q.contains("group_size") || !q.at("group_size").is_number_integer())
      HG_FAIL("'", config_path, "': quantization.group_size is missing");
    w.group_size = q.at("group_size").get<int64_t>();
  }
  const ParamLayout lay = make_param_layout(w.config);
  w.layers.resize(lay.layers.size());
  const QuantReader reader(weights_path);
  const auto shape_of = [&](const std::string& name) {
    const ParamInfo* info = lay.find(name);
    HG_CHECK(info, "unknown parameter ", name);
    return info->shape;
  };
  size_t expected = 0;
  for_each_tensor(
      w, lay,
      [&](const std::string& name, QuantMatrix& m) {
        const std::vector<int64_t> s = shape_of(name);
        const int64_t rows = s[0], cols = s[1];
        const Entry& d = reader.get(name + ".q", q_dtype(w.format), q_shape(w.format, rows, cols, w.group_size));
        std::vector<uint8_t> data(static_cast<const uint8_t*>(d.data),
                                  static_cast<const uint8_t*>(d.data) + d.bytes);
        std::vector<float> scales;
        ++expected;
        if (w.format != WeightFormat::BF16) {
          const Entry& e = reader.get(name + ".scales", "F32", scales_shape(w.format, rows, cols, w.group_size));
          scales.resize(e.bytes / sizeof(float));
          std::memcpy(scales.data(), e.data, e.bytes);
          ++expected;
        }
        m = QuantMatrix::from_parts(w.format, rows, cols, w.group_size, std::move(data), std::move(scales));
      },
      [&](const std::string& name, std::vector<float>& v) {
        const Entry& e = reader.get(name, "F32", shape_of(name));
        v.resize(e.bytes / sizeof(float));
        std::memcpy(v.data(), e.data, e.bytes);
        ++expected;
      });
  if (reader.count() != expected)
    HG_FAIL("'", weights_path, "' has ", reader.count(), " tensors, expected ", expected);
  return w;
}

}  // namespace hessgpt::infer

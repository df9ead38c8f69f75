#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/bf16.h"
#include "core/error.h"

namespace hessgpt {
namespace {

DType parse_dtype(const std::string& s, const std::string& path, const std::string& name) {
  if (s == "F32") return DType::F32;
  if (s == "F64") return DType::F64;
  if (s == "BF16") return DType::BF16;
  if (s == "I32") return DType::I32;
  if (s == "U16") return DType::U16;
  HG_FAIL(path, ": tensor '", name, "' has unsupported dtype ", s);
}

}  // namespace

int64_t SafetensorsEntry::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

SafetensorsReader::SafetensorsReader(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) HG_FAIL("cannot open '", path, "': ", std::strerror(errno));
  struct stat st {};
  ::fstat(fd, &st);
  map_bytes_ = static_cast<size_t>(st.st_size);
  if (map_bytes_ < 8) {
    ::close(fd);
    HG_FAIL(path, ": truncated safetensors file (", map_bytes_, " bytes)");
  }
  map_ = ::mmap(nullptr, map_bytes_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    HG_FAIL("cannot memory-map '", path, "'");
  }
  const auto* bytes = static_cast<const unsigned char*>(map_);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];
  if (header_len > map_bytes_ - 8)
    HG_FAIL(path, ": truncated safetensors file (header of ", header_len, " bytes, file of ",
            map_bytes_, ")");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes + 8, bytes + 8 + header_len);
  } catch (const nlohmann::json::exception& e) {
    HG_FAIL(path, ": corrupt safetensors header: ", e.what());
  }
  if (!header.is_object()) HG_FAIL(path, ": safetensors header is not a JSON object");
  const size_t data_start = 8 + header_len;
  const size_t data_bytes = map_bytes_ - data_start;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (it->is_object())
        for (auto m = it->begin(); m != it->end(); ++m)
          if (m->is_string()) metadata_[m.key()] = m->get<std::string>();
      continue;
    }
    const nlohmann::json& e = *it;
    if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") ||
        !e.contains("data_offsets"))
      HG_FAIL(path, ": tensor '", it.key(), "' has a malformed header entry");
    SafetensorsEntry entry;
    entry.name = it.key();
    entry.dtype = parse_dtype(e["dtype"].get<std::string>(), path, entry.name);
    for (const auto& d : e["shape"]) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0)
        HG_FAIL(path, ": tensor '", entry.name, "' has an invalid shape");
      entry.shape.push_back(d.get<int64_t>());
    }
    const auto& off = e["data_offsets"];
    if (!off.is_array() || off.size() != 2)
      HG_FAIL(path, ": tensor '", entry.name, "' has invalid data_offsets");
    const uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
    if (begin > end || end > data_bytes)
      HG_FAIL(path, ": tensor '", entry.name, "' lies outside the file (offsets ", begin, "..",
              end, ", data section ", data_bytes, " bytes): truncated or corrupt file");
    entry.bytes = end - begin;
    if (entry.bytes != static_cast<size_t>(entry.numel()) * dtype_size(entry.dtype))
      HG_FAIL(path, ": tensor '", entry.name, "' byte size ", entry.bytes,
              " does not match its shape and dtype");
    entry.data = bytes + data_start + begin;
    entries_[entry.name] = std::move(entry);
  }
}

SafetensorsReader::~SafetensorsReader() {
  if (map_) ::munmap(map_, map_bytes_);
}

const SafetensorsEntry& SafetensorsReader::at(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) HG_FAIL(path_, ": missing tensor '", name, "'");
  return it->second;
}

std::vector<float> SafetensorsReader::read_float(const std::string& name) const {
  const SafetensorsEntry& e = at(name);
  std::vector<float> out(static_cast<size_t>(e.numel()));
  switch (e.dtype) {
    case DType::F32:
      std::memcpy(out.data(), e.data, e.bytes);
      break;
    case DType::F64: {
      const auto* src = static_cast<const double*>(e.data);
      for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<float>(src[i]);
      break;
    }
    case DType::BF16: {
      const auto* src = static_cast<const uint16_t*>(e.data);
      for (size_t i = 0; i < out.size(); ++i) out[i] = bf16_to_float(src[i]);
      break;
    }
    default:
      HG_FAIL(path_, ": tensor '", name, "' is not floating point");
  }
  return out;
}

void write_safetensors(const std::string& path, const std::vector<SafetensorsTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header;
  if (!metadata.empty()) header["__metadata__"] = metadata;
  size_t offset = 0;
  for (const SafetensorsTensor& t : tensors) {
    size_t n = 1;
    for (int64_t d : t.shape) n *= static_cast<size_t>(d);
    const size_t bytes = n * dtype_size(t.dtype);
    header[t.name] = {{"dtype", dtype_name(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keep the data 8-byte aligned
  std::ofstream out(path, std::ios::binary);
  if (!out) HG_FAIL("cannot create '", path, "'");
  uint64_t len = text.size();
  unsigned char len_bytes[8];
  for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<unsigned char>(len >> (8 * i));
  out.write(reinterpret_cast<const char*>(len_bytes), 8);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const SafetensorsTensor& t : tensors) {
    size_t n = 1;
    for (int64_t d : t.shape) n *= static_cast<size_t>(d);
    out.write(static_cast<const char*>(t.data), static_cast<std::streamsize>(n * dtype_size(t.dtype)));
  }
  out.flush();
  if (!out) HG_FAIL("failed writing '", path, "' (disk full?)");
}

}  // namespace hessgpt

#include "data/chunk_writer.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "data/fs_util.h"
#include "data/npy_stream.h"

namespace hessgpt::data {
namespace fs = std::filesystem;

namespace {

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

int64_t validation_rows(int64_t rows, double fraction) {
  if (fraction <= 0 || rows < 2) return 0;
  int64_t n = std::llround(static_cast<double>(rows) * fraction);
  if (n < 1) n = 1;
  if (n >= rows) n = rows - 1;
  return n;
}

std::vector<uint32_t> chunk_permutation(int64_t rows, uint64_t seed, int index) {
  std::vector<uint32_t> perm(static_cast<size_t>(rows));
  for (size_t i = 0; i < perm.size(); ++i) perm[i] = static_cast<uint32_t>(i);
  uint64_t state = seed * 0x100000001B3ull + static_cast<uint64_t>(index) + 1;
  for (size_t i = perm.size(); i > 1; --i) std::swap(perm[i - 1], perm[splitmix64(state) % i]);
  return perm;
}

std::string chunk_file_name(int index, const char* split) {
  char name[64];
  std::snprintf(name, sizeof(name), "chunk_%04d_%s.npy", index, split);
  return name;
}

ChunkWriter::ChunkWriter(ChunkWriterOptions options) : opt_(std::move(options)) {
  if (opt_.seq_len < 1) HG_FAIL("seq_len must be at least 1 (got ", opt_.seq_len, ")");
  if (opt_.val_fraction < 0 || opt_.val_fraction >= 1)
    HG_FAIL("val_fraction must be in [0, 1) (got ", opt_.val_fraction, ")");
  row_len_ = opt_.seq_len + 1;
  rows_per_chunk_ = std::max<int64_t>(1, opt_.chunk_tokens / row_len_);
  if (rows_per_chunk_ > 0xFFFFFFFFll) HG_FAIL("chunk_tokens too large: at most 2^32 rows per chunk");
  row_.resize(static_cast<size_t>(row_len_));
}

ChunkWriter::~ChunkWriter() {
  if (stream_) {  // abandoned (an exception unwound the pipeline): leave no temp behind
    std::fclose(stream_);
    std::remove(stream_path_.c_str());
  }
}

void ChunkWriter::open_stream() {
  const int index = static_cast<int>(chunks_.size());
  char name[64];
  std::snprintf(name, sizeof(name), "chunk_%04d.stream.tmp", index);
  stream_path_ = (fs::path(opt_.dir) / name).string();
  stream_ = std::fopen(stream_path_.c_str(), "w+b");
  if (!stream_) HG_FAIL("cannot create '", stream_path_, "': ", std::strerror(errno));
  std::setvbuf(stream_, nullptr, _IOFBF, 1 << 20);
}

void ChunkWriter::append(std::span<const int32_t> ids) {
  for (const int32_t id : ids) {
    HG_CHECK(id >= 0 && id <= 0xFFFF, "token id ", id, " does not fit uint16");
    row_[row_fill_++] = static_cast<uint16_t>(id);
    if (row_fill_ < row_.size()) continue;
    if (!stream_) open_stream();
    if (std::fwrite(row_.data(), sizeof(uint16_t), row_.size(), stream_) != row_.size())
      HG_FAIL("failed writing '", stream_path_, "' (disk full?)");
    row_fill_ = 0;
    if (++rows_in_chunk_ == rows_per_chunk_) finalize_chunk();
  }
  tokens_appended_ += static_cast<int64_t>(ids.size());
}

void ChunkWriter::finish() {
  tail_dropped_ = static_cast<int64_t>(row_fill_);
  row_fill_ = 0;
  if (rows_in_chunk_ > 0) finalize_chunk();
}

void ChunkWriter::finalize_chunk() {
  const int index = static_cast<int>(chunks_.size());
  const int64_t rows = rows_in_chunk_;
  if (std::fflush(stream_) != 0) HG_FAIL("failed writing '", stream_path_, "' (disk full?)");
  const size_t row_bytes = static_cast<size_t>(row_len_) * sizeof(uint16_t);
  const size_t bytes = static_cast<size_t>(rows) * row_bytes;
  void* map = ::mmap(nullptr, bytes, PROT_READ, MAP_SHARED, fileno(stream_), 0);
  if (map == MAP_FAILED) HG_FAIL("cannot memory-map '", stream_path_, "': ", std::strerror(errno));
  ::madvise(map, bytes, MADV_RANDOM);
  const auto* base = static_cast<const unsigned char*>(map);

  ChunkRecord rec;
  rec.index = index;
  rec.val_rows = validation_rows(rows, opt_.val_fraction);
  rec.train_rows = rows - rec.val_rows;
  rec.train_file = chunk_file_name(index, "train");
  rec.val_file = chunk_file_name(index, "val");
  const std::vector<uint32_t> perm = chunk_permutation(rows, opt_.seed, index);
  const auto write_split = [&](const std::string& file, int64_t first, int64_t count, bool fault) {
    const std::string tmp = (fs::path(opt_.dir) / file).string() + ".tmp";
    NpyStreamWriter out(tmp, "<u2", sizeof(uint16_t), {count, row_len_});
    for (int64_t r = 0; r < count; ++r) {
      out.write(base + static_cast<size_t>(perm[static_cast<size_t>(first + r)]) * row_bytes, row_bytes);
      if (fault && r == count / 2) {  // test hook: die like a killed process would
        std::fflush(nullptr);
        ::_exit(75);
      }
    }
    out.close();
  };
  const bool fault = opt_.fault_chunk == index;
  write_split(rec.val_file, 0, rec.val_rows, false);
  write_split(rec.train_file, rec.val_rows, rec.train_rows, fault);
  ::munmap(map, bytes);
  std::fclose(stream_);
  stream_ = nullptr;
  std::remove(stream_path_.c_str());
  const fs::path dir(opt_.dir);
  rename_durably((dir / rec.val_file).string() + ".tmp", (dir / rec.val_file).string());
  rename_durably((dir / rec.train_file).string() + ".tmp", (dir / rec.train_file).string());
  chunks_.push_back(rec);
  rows_in_chunk_ = 0;
}

}  // namespace hessgpt::data

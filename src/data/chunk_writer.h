// Turns the token stream into chunk files. Tokens are cut into rows of
// seq_len + 1 (a row gives seq_len inputs and their seq_len next-token
// targets); rows go to a temporary stream file on disk, so memory stays
// bounded whatever the chunk size. When a chunk has rows_per_chunk rows its
// rows are shuffled with a seeded permutation; the first val_rows of the
// permutation become chunk_NNNN_val.npy, the rest chunk_NNNN_train.npy, both
// uint16 [rows, seq_len + 1]. Files are written under ".tmp" names, fsynced
// and renamed, so a file with a final name is always complete.
#pragma once

#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <vector>

namespace hessgpt::data {

struct ChunkWriterOptions {
  std::string dir;
  int64_t chunk_tokens = 1'000'000'000;  // rows_per_chunk = max(1, chunk_tokens / (seq_len + 1))
  int64_t seq_len = 1024;
  double val_fraction = 0.015;
  uint64_t seed = 0;
  int fault_chunk = -1;  // test hook: the process dies half-way through writing this chunk
};

struct ChunkRecord {
  int index = 0;
  std::string train_file, val_file;  // names relative to the output folder
  int64_t train_rows = 0, val_rows = 0;
};

// Validation rows of a chunk of `rows` rows: round(rows · fraction), at least
// one when fraction > 0 and rows >= 2, and never all of them.
int64_t validation_rows(int64_t rows, double fraction);

// The seeded row order of chunk `index` (portable: our own Fisher–Yates).
std::vector<uint32_t> chunk_permutation(int64_t rows, uint64_t seed, int index);

std::string chunk_file_name(int index, const char* split);  // "chunk_0003_train.npy"

class ChunkWriter {
 public:
  explicit ChunkWriter(ChunkWriterOptions options);
  ~ChunkWriter();
  ChunkWriter(const ChunkWriter&) = delete;
  ChunkWriter& operator=(const ChunkWriter&) = delete;

  // Appends ids (each must fit uint16) to the stream.
  void append(std::span<const int32_t> ids);
  // Writes the last, partial chunk; tokens short of a full row are dropped.
  void finish();

  const std::vector<ChunkRecord>& chunks() const { return chunks_; }
  int64_t rows_per_chunk() const { return rows_per_chunk_; }
  int64_t row_len() const { return row_len_; }
  int64_t tokens_appended() const { return tokens_appended_; }
  int64_t tail_tokens_dropped() const { return tail_dropped_; }

 private:
  void open_stream();
  void finalize_chunk();

  ChunkWriterOptions opt_;
  int64_t row_len_;
  int64_t rows_per_chunk_;
  std::vector<uint16_t> row_;
  size_t row_fill_ = 0;
  int64_t rows_in_chunk_ = 0;
  std::FILE* stream_ = nullptr;
  std::string stream_path_;
  std::vector<ChunkRecord> chunks_;
  int64_t tokens_appended_ = 0;
  int64_t tail_dropped_ = 0;
};

}  // namespace hessgpt::data

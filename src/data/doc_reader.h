// Reads one source's documents, streaming: files are listed up front (sorted,
// then shuffled with the seed so a byte cap samples the whole source, not its
// alphabetical head) and read one at a time through zlib, which reads gzip
// and plain files alike. Memory: one file (format "text"/"json" with
// documents "file") or one line/paragraph at a time otherwise.
//
// Formats (SourceConfig::format / documents):
//   text + file        one document per file
//   text + blank-line  documents separated by one or more blank lines
//   text + heading     dictionary style: a document starts at a non-indented
//                      line that follows a blank line (FOLDOC, glossaries)
//   jsonl              one JSON object per line, text at `text_field`
//   json               one document per file: every string under a key named
//                      `text_field`, anywhere in the tree, in file order
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/drop_counts.h"
#include "data/mix.h"

namespace hessgpt::data {

struct RawDoc {
  std::string text;
  std::string origin;          // "file" or "file:line"
  int64_t invalid_utf8 = 0;    // invalid sequences already repaired by the reader (JSON)
  bool drop_invalid = false;   // invalid UTF-8 under the "drop" policy, seen by the reader
};

// All files of a source, in reading order. Throws Error for a path that does not exist.
std::vector<std::string> list_source_files(const SourceConfig& source, uint64_t seed);

class DocReader {
 public:
  DocReader(const SourceConfig& source, uint64_t seed);
  ~DocReader();
  DocReader(const DocReader&) = delete;
  DocReader& operator=(const DocReader&) = delete;

  // The next document, or nothing once the source is exhausted (or its byte
  // cap reached). Unreadable files and malformed lines are counted and skipped.
  std::optional<RawDoc> next();

  const DropCounts& drops() const { return drops_; }
  int64_t bytes_read() const { return bytes_read_; }
  int64_t files_read() const { return files_read_; }
  int64_t file_count() const { return static_cast<int64_t>(files_.size()); }
  bool capped() const { return capped_; }

 private:
  struct OpenFile;
  bool fill_pending();  // reads until pending_ has documents or files run out
  void read_whole_file(OpenFile& file);
  void read_lines(OpenFile& file);
  void push_doc(std::string text, std::string origin, int64_t invalid = 0);
  void warn(const std::string& what);

  SourceConfig source_;
  std::vector<std::string> files_;
  size_t next_file_ = 0;
  std::unique_ptr<OpenFile> open_;
  std::deque<RawDoc> pending_;
  DropCounts drops_;
  int64_t bytes_read_ = 0;
  int64_t files_read_ = 0;
  int warnings_ = 0;
  bool capped_ = false;
};

}  // namespace hessgpt::data

#include "data/doc_reader.h"

#include <fnmatch.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/log.h"
#include "data/utf8_clean.h"

namespace hessgpt::data {
namespace fs = std::filesystem;

namespace {

constexpr size_t kMaxFileBytes = 256u << 20;  // one "file" document; larger is refused as too_long
constexpr int kMaxWarnings = 5;               // per source, then only counted

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

bool matches_any(const std::vector<std::string>& patterns, const std::string& rel, const std::string& name) {
  for (const auto& p : patterns)
    if (fnmatch(p.c_str(), rel.c_str(), 0) == 0 || fnmatch(p.c_str(), name.c_str(), 0) == 0) return true;
  return false;
}

bool is_blank(const std::string& line) {
  return std::all_of(line.begin(), line.end(), [](char c) { return c == ' ' || c == '\t' || c == '\r'; });
}

// Every string under a key named `field`, depth first in file order.
void collect_text(const nlohmann::ordered_json& j, const std::string& field, bool labels,
                  std::vector<std::string>& path, std::string& out) {
  if (j.is_object()) {
    for (const auto& [key, value] : j.items()) {
      if (key == field && value.is_string()) {
        if (!out.empty()) out += "\n";
        if (labels && path.size() > 1) {  // the top-level key is a section name, not a label
          for (size_t i = 1; i < path.size(); ++i) out += (i > 1 ? " / " : "") + path[i];
          out += ": ";
        }
        out += value.get<std::string>();
        continue;
      }
      path.push_back(key);
      collect_text(value, field, labels, path, out);
      path.pop_back();
    }
  } else if (j.is_array()) {
    for (const auto& e : j) collect_text(e, field, labels, path, out);
  }
}

const nlohmann::json* find_dotted(const nlohmann::json& j, const std::string& dotted) {
  const nlohmann::json* cur = &j;
  size_t start = 0;
  while (true) {
    const size_t dot = dotted.find('.', start);
    const std::string key = dotted.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!cur->is_object() || !cur->contains(key)) return nullptr;
    cur = &(*cur)[key];
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

}  // namespace

std::vector<std::string> list_source_files(const SourceConfig& source, uint64_t seed) {
  std::vector<std::string> files;
  for (const auto& p : source.paths) {
    std::error_code ec;
    const auto status = fs::status(p, ec);
    if (ec || !fs::exists(status))
      HG_FAIL("source '", source.name, "': path '", p, "' does not exist",
              p.find("/.deps/") != std::string::npos ? " (run scripts/setup.sh to install the demo corpus)" : "");
    if (fs::is_regular_file(status)) {  // a file named explicitly is always read
      files.push_back(p);
      continue;
    }
    std::vector<std::string> found;
    for (auto it = fs::recursive_directory_iterator(p, fs::directory_options::skip_permission_denied, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (!it->is_regular_file(ec)) continue;
      // lexically_relative: fs::relative would resolve symlinks (a readlink per path part).
      const std::string rel = "/" + it->path().lexically_relative(p).string();
      const std::string name = it->path().filename().string();
      if (!source.include.empty() && !matches_any(source.include, rel, name)) continue;
      if (matches_any(source.exclude, rel, name)) continue;
      found.push_back(it->path().string());
    }
    if (ec) HG_FAIL("source '", source.name, "': cannot list '", p, "': ", ec.message());
    std::sort(found.begin(), found.end());
    files.insert(files.end(), found.begin(), found.end());
  }
  // Seeded Fisher–Yates (our own, so the order is the same on every platform).
  uint64_t state = seed ^ std::hash<std::string>{}(source.name);
  for (size_t i = files.size(); i > 1; --i) std::swap(files[i - 1], files[splitmix64(state) % i]);
  return files;
}

struct DocReader::OpenFile {
  gzFile gz = nullptr;
  std::string path;
  std::vector<char> buf = std::vector<char>(1 << 20);
  size_t pos = 0, len = 0;
  bool eof = false, error = false;
  int64_t line_no = 0;
  std::string para;  // paragraph being assembled (blank-line / heading)
  int64_t para_line = 0;
  bool saw_blank = false;  // a blank line since the last text line of para

  ~OpenFile() {
    if (gz) gzclose(gz);
  }
  bool refill() {
    if (eof) return false;
    const int n = gzread(gz, buf.data(), static_cast<unsigned>(buf.size()));
    int err = Z_OK;
    gzerror(gz, &err);
    if (n < 0 || (err != Z_OK && err != Z_STREAM_END)) {
      error = true;
      eof = true;
      return false;
    }
    if (n == 0) {
      eof = true;
      return false;
    }
    pos = 0;
    len = static_cast<size_t>(n);
    return true;
  }
  // One line without its '\n'; false at the end of the file. A line longer
  // than kMaxFileBytes is cut there (the rest is skipped and *overlong set),
  // so one pathological line cannot exhaust memory.
  bool read_line(std::string& line, int64_t& bytes, bool* overlong) {
    line.clear();
    *overlong = false;
    bool any = false;
    while (true) {
      if (pos == len && !refill()) return any;
      any = true;
      const char* start = buf.data() + pos;
      const void* nl = std::memchr(start, '\n', len - pos);
      const size_t n = nl ? static_cast<size_t>(static_cast<const char*>(nl) - start) : len - pos;
      const size_t room = kMaxFileBytes - std::min(kMaxFileBytes, line.size());
      if (n > room) *overlong = true;
      line.append(start, std::min(n, room));
      bytes += static_cast<int64_t>(n + (nl ? 1 : 0));
      pos += n + (nl ? 1 : 0);
      if (nl) {
        ++line_no;
        return true;
      }
    }
  }
};

DocReader::DocReader(const SourceConfig& source, uint64_t seed)
    : source_(source), files_(list_source_files(source, seed)) {}

DocReader::~DocReader() = default;

std::optional<RawDoc> DocReader::next() {
  if (pending_.empty() && !fill_pending()) return std::nullopt;
  RawDoc doc = std::move(pending_.front());
  pending_.pop_front();
  return doc;
}

void DocReader::warn(const std::string& what) {
  if (++warnings_ <= kMaxWarnings) log_warn("source '", source_.name, "': ", what);
  if (warnings_ == kMaxWarnings + 1) log_warn("source '", source_.name, "': further problems only counted");
}

bool DocReader::fill_pending() {
  const bool whole_file = source_.format == "json" || (source_.format == "text" && source_.documents == "file");
  while (pending_.empty()) {
    if (capped_) return false;
    if (!open_) {
      if (next_file_ >= files_.size()) return false;
      auto file = std::make_unique<OpenFile>();
      file->path = files_[next_file_++];
      file->gz = gzopen(file->path.c_str(), "rb");
      if (!file->gz) {
        drops_.add(DropReason::kUnreadable);
        warn("cannot open '" + file->path + "'");
        continue;
      }
      gzbuffer(file->gz, 1 << 18);
      ++files_read_;
      open_ = std::move(file);
      if (whole_file) {
        read_whole_file(*open_);
        open_.reset();
      }
      continue;
    }
    read_lines(*open_);
    if (open_->eof) {
      if (open_->error) {
        drops_.add(DropReason::kUnreadable);
        warn("'" + open_->path + "' is corrupt or truncated (" + std::to_string(open_->line_no) + " lines read)");
      }
      open_.reset();
    }
  }
  return true;
}

void DocReader::read_whole_file(OpenFile& file) {
  std::string data;
  while (file.refill()) {
    data.append(file.buf.data(), file.len);
    if (data.size() > kMaxFileBytes) {
      drops_.add(DropReason::kTooLong);
      warn("'" + file.path + "' is larger than 256 MiB; skipped");
      bytes_read_ += static_cast<int64_t>(data.size());
      return;
    }
  }
  bytes_read_ += static_cast<int64_t>(data.size());
  if (file.error) {
    drops_.add(DropReason::kUnreadable);
    warn("'" + file.path + "' is corrupt or truncated");
    return;
  }
  if (source_.format == "text") {
    push_doc(std::move(data), file.path);
    return;
  }
  // json: the parser needs valid UTF-8, so repair (or refuse) it first.
  Utf8Cleaned clean = clean_utf8(data);
  if (clean.invalid_sequences > 0 && source_.utf8 == "drop") {
    drops_.add(DropReason::kInvalidUtf8);
    return;
  }
  // ordered_json keeps the file's key order (nlohmann::json would sort keys).
  const nlohmann::ordered_json j = nlohmann::ordered_json::parse(clean.text, nullptr, false);
  if (j.is_discarded()) {
    drops_.add(DropReason::kMalformedJson);
    warn("'" + file.path + "' is not valid JSON");
    return;
  }
  std::string text;
  std::vector<std::string> path;
  collect_text(j, source_.text_field, source_.json_labels, path, text);
  if (text.empty()) {
    drops_.add(DropReason::kMissingTextField);
    warn("'" + file.path + "' has no string field '" + source_.text_field + "'");
    return;
  }
  push_doc(std::move(text), file.path, clean.invalid_sequences);
}

void DocReader::read_lines(OpenFile& file) {
  std::string line;
  int64_t bytes = 0;
  const auto flush_para = [&] {
    if (!file.para.empty()) push_doc(std::move(file.para), file.path + ":" + std::to_string(file.para_line));
    file.para.clear();
  };
  while (pending_.empty()) {
    bool overlong = false;
    const bool got = file.read_line(line, bytes, &overlong);
    bytes_read_ += bytes;
    bytes = 0;
    if (!got) {
      if (source_.format == "text") flush_para();
      return;
    }
    if (overlong) {
      drops_.add(DropReason::kTooLong);
      warn(file.path + ":" + std::to_string(file.line_no) + ": line longer than 256 MiB skipped");
      continue;
    }
    if (source_.format == "jsonl") {
      if (is_blank(line)) continue;
      const std::string where = file.path + ":" + std::to_string(file.line_no);
      Utf8Cleaned clean = clean_utf8(line);
      if (clean.invalid_sequences > 0 && source_.utf8 == "drop") {
        drops_.add(DropReason::kInvalidUtf8);
        continue;
      }
      const nlohmann::json j = nlohmann::json::parse(clean.text, nullptr, false);
      if (j.is_discarded() || !j.is_object()) {
        drops_.add(DropReason::kMalformedJson);
        warn(where + ": malformed JSON line");
        continue;
      }
      const nlohmann::json* text = find_dotted(j, source_.text_field);
      if (!text || !text->is_string()) {
        drops_.add(DropReason::kMissingTextField);
        warn(where + ": no string field '" + source_.text_field + "'");
        continue;
      }
      push_doc(text->get<std::string>(), where, clean.invalid_sequences);
      continue;
    }
    // text, blank-line or heading documents
    if (is_blank(line)) {
      if (source_.documents == "blank-line") flush_para();
      else file.saw_blank = !file.para.empty();
      continue;
    }
    const bool indented = line[0] == ' ' || line[0] == '\t';
    if (source_.documents == "heading" && !indented && file.saw_blank) flush_para();
    if (file.para.empty()) file.para_line = file.line_no;
    else file.para += file.saw_blank ? "\n\n" : "\n";
    file.saw_blank = false;
    file.para += line;
    if (file.para.size() > kMaxFileBytes) flush_para();  // bounded memory; the filter judges it
  }
}

void DocReader::push_doc(std::string text, std::string origin, int64_t invalid) {
  if (source_.max_bytes > 0 && bytes_read_ >= source_.max_bytes) capped_ = true;
  const size_t limit = static_cast<size_t>(source_.split_chars);
  if (limit == 0 || text.size() <= limit) {
    pending_.push_back({std::move(text), std::move(origin), invalid});
    return;
  }
  // Split at the last line end before the limit (or at a UTF-8 boundary when
  // a line is longer): keeps documents small enough for precise mixing.
  size_t start = 0, part = 0;
  while (start < text.size()) {
    size_t end = std::min(text.size(), start + limit);
    if (end < text.size()) {
      const size_t nl = text.rfind('\n', end - 1);
      if (nl != std::string::npos && nl > start) end = nl + 1;
      else
        while (end > start + 1 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
    }
    pending_.push_back({text.substr(start, end - start), origin + "#" + std::to_string(part++), part == 1 ? invalid : 0});
    start = end;
  }
}

}  // namespace hessgpt::data

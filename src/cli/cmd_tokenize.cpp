// hessgpt tokenize: text lines <-> token ids with the HessGPT tokenizer.
//
//   hessgpt tokenize [--tokenizer F] [FILES...]        each line -> its ids (no BOS), space-separated
//   hessgpt tokenize --decode [FILES...]               each line of ids -> text
//   hessgpt tokenize --count [--json] FILES...         tokens per file (sum over its lines)
//   hessgpt tokenize --chat [--decode]                 chat JSONL line <-> template ids
//   hessgpt tokenize --rebuild-from JS --out MODEL     rebuild the default Mistral model offline
//
// Lines end at '\n' only (a '\r' stays part of the text), as in spm_encode.
#include <algorithm>
#include <charconv>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cli/cli_util.h"
#include "cli/command_registry.h"
#include "core/error.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/model_rebuild.h"
#include "tokenizer/tokenizer.h"

namespace hessgpt::cli {
namespace {

struct TokenizeOptions {
  std::string tokenizer;
  std::vector<std::string> files;
  bool decode = false;
  bool count = false;
  bool pieces = false;
  bool chat = false;
  bool json = false;
  int threads = 0;  // 0: all cores
  std::string rebuild_from;
  std::string out;
};

// Reads '\n'-terminated lines in large blocks; a batch of lines stays valid
// until the next call, so they can be encoded in parallel without copies.
class LineReader {
 public:
  LineReader(std::FILE* file, std::string name) : file_(file), name_(std::move(name)) {}

  // Up to about `batch_bytes` of whole lines; empty at the end of the input.
  const std::vector<std::string_view>& next_batch(size_t batch_bytes) {
    lines_.clear();
    buffer_.erase(0, consumed_);
    consumed_ = 0;
    // Read on until the batch is big enough and holds a whole line (a line
    // may be longer than a batch), or the input ends.
    bool whole_line = buffer_.find('\n') != std::string::npos;
    while (!eof_ && (buffer_.size() < batch_bytes || !whole_line)) {
      const size_t old = buffer_.size();
      buffer_.resize(old + kReadSize);
      const size_t got = std::fread(buffer_.data() + old, 1, kReadSize, file_);
      buffer_.resize(old + got);
      if (got < kReadSize) {
        if (std::ferror(file_)) HG_FAIL(name_, ": read error");
        eof_ = true;
      }
      whole_line = whole_line || std::string_view(buffer_).substr(old).find('\n') != std::string_view::npos;
    }
    size_t begin = 0;
    while (true) {
      const size_t end = buffer_.find('\n', begin);
      if (end == std::string::npos) break;
      lines_.emplace_back(buffer_.data() + begin, end - begin);
      begin = end + 1;
    }
    // The last line may lack its '\n'; it is complete only at the end of input.
    if (eof_ && begin < buffer_.size()) {
      lines_.emplace_back(buffer_.data() + begin, buffer_.size() - begin);
      begin = buffer_.size();
    }
    consumed_ = begin;
    return lines_;
  }
  uint64_t first_line_number() const { return line_number_; }
  void advance(size_t n) { line_number_ += n; }

 private:
  static constexpr size_t kReadSize = 1 << 20;
  std::FILE* file_;
  std::string name_;
  std::string buffer_;
  size_t consumed_ = 0;
  bool eof_ = false;
  std::vector<std::string_view> lines_;
  uint64_t line_number_ = 1;
};

// Buffered stdout: formatting ids into one string beats stdio per number.
class Output {
 public:
  ~Output() { flush(); }
  std::string& buffer() { return buffer_; }
  void maybe_flush() {
    if (buffer_.size() >= (1 << 20)) flush();
  }
  void flush() {
    if (!buffer_.empty() && std::fwrite(buffer_.data(), 1, buffer_.size(), stdout) != buffer_.size()) {
      HG_FAIL("cannot write to standard output");
    }
    buffer_.clear();
  }

 private:
  std::string buffer_;
};

void append_ids(std::string& out, const std::vector<int32_t>& ids) {
  char number[16];
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) out.push_back(' ');
    const auto res = std::to_chars(number, number + sizeof number, ids[i]);
    out.append(number, res.ptr);
  }
}

std::vector<int32_t> parse_ids(std::string_view line, uint64_t line_number) {
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i < line.size()) {
    if (line[i] == ' ' || line[i] == '\t' || line[i] == '\r' || line[i] == ',') {
      ++i;
      continue;
    }
    size_t end = i;
    while (end < line.size() && line[end] != ' ' && line[end] != '\t' && line[end] != '\r' && line[end] != ',') ++end;
    int32_t id = 0;
    const auto res = std::from_chars(line.data() + i, line.data() + end, id);
    if (res.ec != std::errc() || res.ptr != line.data() + end) {
      HG_FAIL("line ", line_number, ": '", line.substr(i, end - i), "' is not a token id");
    }
    ids.push_back(id);
    i = end;
  }
  return ids;
}

// Runs `per_line` over every line of every input, in parallel within a batch,
// and writes the results in input order.
template <typename PerLine>
void for_each_line(const TokenizeOptions& o, PerLine per_line) {
  Output out;
  std::vector<std::string> results;
  auto process = [&](std::FILE* file, const std::string& name) {
    LineReader reader(file, name);
    while (true) {
      const auto& lines = reader.next_batch(size_t(4) << 20);
      if (lines.empty()) break;
      results.resize(lines.size());
      const uint64_t first = reader.first_line_number();
      std::string error;
#pragma omp parallel for num_threads(o.threads) schedule(dynamic, 64)
      for (size_t i = 0; i < lines.size(); ++i) {
        try {
          results[i].clear();
          per_line(lines[i], first + i, results[i]);
        } catch (const std::exception& e) {
#pragma omp critical
          if (error.empty()) error = e.what();
        }
      }
      if (!error.empty()) HG_FAIL(name, ": ", error);
      for (const std::string& r : results) {
        out.buffer() += r;
        out.buffer().push_back('\n');
        out.maybe_flush();
      }
      reader.advance(lines.size());
    }
  };
  if (o.files.empty()) {
    process(stdin, "<stdin>");
  } else {
    for (const std::string& path : o.files) {
      std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
      if (!file) HG_FAIL("cannot open ", path);
      process(file.get(), path);
    }
  }
}

void run_count(const TokenizeOptions& o, const Tokenizer& tok) {
  nlohmann::json files = nlohmann::json::array();
  uint64_t total = 0;
  const std::vector<std::string> paths = o.files.empty() ? std::vector<std::string>{"-"} : o.files;
  for (const std::string& path : paths) {
    const bool use_stdin = path == "-";
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(use_stdin ? nullptr : std::fopen(path.c_str(), "rb"),
                                                         &std::fclose);
    if (!use_stdin && !file) HG_FAIL("cannot open ", path);
    LineReader reader(use_stdin ? stdin : file.get(), path);
    uint64_t tokens = 0, n_lines = 0;
    while (true) {
      const auto& lines = reader.next_batch(size_t(4) << 20);
      if (lines.empty()) break;
#pragma omp parallel for num_threads(o.threads) reduction(+ : tokens) schedule(dynamic, 64)
      for (size_t i = 0; i < lines.size(); ++i) tokens += tok.encode(lines[i]).size();
      n_lines += lines.size();
    }
    total += tokens;
    files.push_back({{"path", path}, {"tokens", tokens}, {"lines", n_lines}});
    if (!o.json) std::printf("%llu %s\n", static_cast<unsigned long long>(tokens), path.c_str());
  }
  if (o.json) {
    print_json({{"files", files}, {"tokens", total}, {"tokenizer_sha256", tok.checksum()}});
  } else if (paths.size() > 1) {
    std::printf("%llu total\n", static_cast<unsigned long long>(total));
  }
}

void run_tokenize(TokenizeOptions o) {
  o.threads = resolve_threads(o.threads);
  if (o.count && (o.decode || o.chat || o.pieces)) HG_FAIL("--count cannot be combined with --decode, --chat or --pieces");
  if (o.pieces && (o.decode || o.chat)) HG_FAIL("--pieces cannot be combined with --decode or --chat");
  if (o.json && !o.count) HG_FAIL("--json goes with --count");
  if (!o.rebuild_from.empty()) {
    if (o.out.empty()) HG_FAIL("--rebuild-from needs --out MODEL_FILE");
    const std::string digest = rebuild_mistral_model(o.rebuild_from, o.out);
    std::fprintf(stderr, "wrote %s (sha256 %s)\n", o.out.c_str(), digest.c_str());
    return;
  }
  const std::unique_ptr<Tokenizer> tok = Tokenizer::load_or_default(o.tokenizer);
  if (o.count) {
    run_count(o, *tok);
  } else if (o.chat && o.decode) {
    for_each_line(o, [&](std::string_view line, uint64_t n, std::string& out) {
      try {
        // Ids may spell invalid UTF-8 (byte pieces); JSON gets U+FFFD there.
        out = chat::conversation_to_json(chat::decode_conversation(*tok, parse_ids(line, n)))
                  .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      } catch (const Error& e) {
        HG_FAIL("line ", n, ": ", e.what());
      }
    });
  } else if (o.chat) {
    for_each_line(o, [&](std::string_view line, uint64_t n, std::string& out) {
      try {
        append_ids(out, chat::encode_conversation(*tok, chat::conversation_from_json_line(line)).ids);
      } catch (const Error& e) {
        HG_FAIL("line ", n, ": ", e.what());
      }
    });
  } else if (o.decode) {
    for_each_line(o, [&](std::string_view line, uint64_t n, std::string& out) {
      try {
        out = tok->decode(parse_ids(line, n));
      } catch (const Error& e) {
        HG_FAIL("line ", n, ": ", e.what());
      }
    });
  } else if (o.pieces) {
    for_each_line(o, [&](std::string_view line, uint64_t, std::string& out) {
      const std::vector<int32_t> ids = tok->encode(line);
      for (size_t i = 0; i < ids.size(); ++i) {
        if (i > 0) out.push_back(' ');
        out += tok->id_to_piece(ids[i]);
      }
    });
  } else {
    for_each_line(o, [&](std::string_view line, uint64_t, std::string& out) { append_ids(out, tok->encode(line)); });
  }
}

void setup(CLI::App& app) {
  auto o = std::make_shared<TokenizeOptions>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Text lines to token ids and back (Mistral tokenizer + specials)");
  cmd->add_option("--tokenizer", o->tokenizer,
                  "SentencePiece tokenizer.model (default: $HESSGPT_TOKENIZER, else the rebuilt Mistral model)");
  cmd->add_option("files", o->files, "Input files (default: standard input)");
  cmd->add_flag("--decode", o->decode, "Each input line holds ids; print its text");
  cmd->add_flag("--count", o->count, "Print the token count of each file (sum over its lines)");
  cmd->add_flag("--pieces", o->pieces, "Print pieces instead of ids");
  cmd->add_flag("--chat", o->chat, "Each line is a chat JSON object (SPEC §5); print its template ids");
  cmd->add_flag("--json", o->json, "With --count: one JSON object on stdout");
  cmd->add_option("--threads", o->threads, "Threads encoding lines in parallel (default: all cores)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--rebuild-from", o->rebuild_from,
                  "Rebuild the Mistral model from mistral-tokenizer.js (npm mistral-tokenizer-js) into --out");
  cmd->add_option("--out", o->out, "Model file written by --rebuild-from");
  cmd->callback([o] { run_tokenize(*o); });
}

HG_REGISTER_COMMAND(setup);

}  // namespace
}  // namespace hessgpt::cli

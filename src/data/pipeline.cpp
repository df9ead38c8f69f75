#include "data/pipeline.h"

#include <omp.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <deque>
#include <exception>
#include <optional>

#include "core/error.h"
#include "core/log.h"
#include "data/chunk_writer.h"
#include "data/dedup.h"
#include "data/doc_reader.h"
#include "data/manifest.h"
#include "data/quality_filter.h"
#include "data/utf8_clean.h"

namespace hessgpt::data {
namespace {

using Clock = std::chrono::steady_clock;

struct SourceState {
  const SourceConfig* config = nullptr;
  std::unique_ptr<DocReader> reader;
  std::deque<std::vector<int32_t>> ready;  // tokenised documents (<s> … </s>) waiting to be mixed
  DropCounts drops;
  int64_t docs_read = 0, docs_kept = 0, docs_used = 0, tokens = 0;
  int64_t utf8_repaired = 0, invalid_sequences = 0;
  bool exhausted = false;
};

// One document through the per-document stages (run on worker threads).
struct WorkDoc {
  RawDoc raw;
  std::string text;
  std::optional<DropReason> drop;
  Hash128 hash;
  std::vector<uint32_t> signature;
  std::vector<int32_t> ids;
  int64_t invalid = 0;
};

std::string_view trim(std::string_view s) {
  const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

// Runs fn(i) for i in [0, n) on `threads` threads, dynamically balanced;
// the first exception is rethrown here (none escapes a worker).
template <typename Fn>
void parallel_for(int64_t n, int threads, Fn&& fn) {
  std::exception_ptr error;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int64_t i = 0; i < n; ++i) {
    try {
      fn(i);
    } catch (...) {
#pragma omp critical(hg_data_parallel_error)
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

class Pipeline {
 public:
  Pipeline(const PrepareOptions& opt, const Encoder& enc)
      : opt_(opt), enc_(enc), near_(opt.mix.dedup) {}

  PrepareResult run();

 private:
  bool refill(SourceState& s);
  void process(SourceState& s, std::vector<WorkDoc>& docs);
  nlohmann::json build_manifest(const ChunkWriter& writer, const std::string& stop_reason) const;
  int64_t total_tokens() const;

  const PrepareOptions& opt_;
  const Encoder& enc_;
  std::vector<SourceState> sources_;
  ExactDedup exact_;
  NearDedup near_;
  int64_t bytes_read_ = 0;
  std::atomic<int64_t> encode_ns_{0};   // summed over threads: the tokenizer's own time
  std::atomic<int64_t> encode_bytes_{0};
};

int64_t Pipeline::total_tokens() const {
  int64_t n = 0;
  for (const auto& s : sources_) n += s.tokens;
  return n;
}

bool Pipeline::refill(SourceState& s) {
  const int64_t batch_bytes = opt_.batch_bytes > 0 ? opt_.batch_bytes : int64_t{1 << 20} * opt_.threads;
  while (s.ready.empty()) {
    std::vector<WorkDoc> docs;
    int64_t bytes = 0;
    while (bytes < batch_bytes && docs.size() < 8192) {
      std::optional<RawDoc> raw = s.reader->next();
      if (!raw) break;
      bytes += static_cast<int64_t>(raw->text.size());
      docs.push_back(WorkDoc{std::move(*raw), {}, {}, {}, {}, {}, 0});
    }
    if (docs.empty()) return false;
    process(s, docs);
  }
  return true;
}

void Pipeline::process(SourceState& s, std::vector<WorkDoc>& docs) {
  const SourceConfig& cfg = *s.config;
  const DedupConfig& dd = opt_.mix.dedup;
  s.docs_read += static_cast<int64_t>(docs.size());
  // 1. clean, filter, hash: independent per document.
  parallel_for(static_cast<int64_t>(docs.size()), opt_.threads, [&](int64_t i) {
    WorkDoc& d = docs[static_cast<size_t>(i)];
    Utf8Cleaned clean = clean_utf8(d.raw.text);
    d.raw.text = std::string();
    d.invalid = d.raw.invalid_utf8 + clean.invalid_sequences;
    if (d.invalid > 0 && cfg.utf8 == "drop") {
      d.drop = DropReason::kInvalidUtf8;
      return;
    }
    if (clean.has_nul) {
      d.drop = DropReason::kBinary;
      return;
    }
    d.text = std::string(trim(clean.text));
    d.drop = check_quality(d.text, cfg.filter);
    if (d.drop) return;
    if (dd.exact) d.hash = dedup_hash(d.text);
    if (dd.near) d.signature = minhash_signature(d.text, dd);
  });
  // 2. dedup in document order: the first copy wins, whatever the thread count.
  std::vector<size_t> kept;
  for (size_t i = 0; i < docs.size(); ++i) {
    WorkDoc& d = docs[i];
    if (d.invalid > 0) {
      ++s.utf8_repaired;
      s.invalid_sequences += d.invalid;
    }
    if (!d.drop && dd.exact && !exact_.insert(d.hash)) d.drop = DropReason::kExactDuplicate;
    if (!d.drop && dd.near && !near_.insert(d.signature)) d.drop = DropReason::kNearDuplicate;
    if (d.drop) {
      s.drops.add(*d.drop);
      continue;
    }
    kept.push_back(i);
  }
  s.docs_kept += static_cast<int64_t>(kept.size());
  // 3. tokenise the survivors.
  parallel_for(static_cast<int64_t>(kept.size()), opt_.threads, [&](int64_t k) {
    WorkDoc& d = docs[kept[static_cast<size_t>(k)]];
    const auto t0 = Clock::now();
    std::vector<int32_t> body = enc_.encode(d.text);
    encode_ns_ += std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count();
    encode_bytes_ += static_cast<int64_t>(d.text.size());
    d.ids.reserve(body.size() + 2);
    d.ids.push_back(enc_.bos_id());
    d.ids.insert(d.ids.end(), body.begin(), body.end());
    d.ids.push_back(enc_.eos_id());
    d.text = std::string();
  });
  for (size_t i : kept) s.ready.push_back(std::move(docs[i].ids));
}

PrepareResult Pipeline::run() {
  const auto start = Clock::now();
  if (opt_.threads < 1) HG_FAIL("threads must be at least 1");
  if (opt_.chunk_tokens < 1) HG_FAIL("chunk_tokens must be positive");
  if (enc_.vocab_size() > 65536)
    HG_FAIL("tokenizer vocabulary ", enc_.vocab_size(), " does not fit uint16 token files");
  for (const auto& cfg : opt_.mix.sources) {
    SourceState s;
    s.config = &cfg;
    s.reader = std::make_unique<DocReader>(cfg, opt_.seed);  // a bad path fails here, before any deletion
    log_info("source '", cfg.name, "': ", s.reader->file_count(), " files, share ", cfg.share);
    sources_.push_back(std::move(s));
  }
  clear_prepared_dir(opt_.out_dir);
  ChunkWriter writer({opt_.out_dir, opt_.chunk_tokens, opt_.seq_len, opt_.val_fraction, opt_.seed,
                      opt_.fault_chunk});
  std::string stop_reason;
  auto last_log = Clock::now();
  while (true) {
    if (opt_.max_tokens > 0 && total_tokens() >= opt_.max_tokens) {
      stop_reason = "max_tokens";
      break;
    }
    // The source furthest below its share (ties: the first listed).
    SourceState* pick = nullptr;
    double best = 0;
    for (auto& s : sources_) {
      const double ratio = static_cast<double>(s.tokens) / s.config->share;
      if (!pick || ratio < best) {
        pick = &s;
        best = ratio;
      }
    }
    if (pick->ready.empty() && !refill(*pick)) {
      pick->exhausted = true;
      stop_reason = "source_exhausted:" + pick->config->name;
      break;
    }
    std::vector<int32_t> ids = std::move(pick->ready.front());
    pick->ready.pop_front();
    writer.append(ids);
    pick->tokens += static_cast<int64_t>(ids.size());
    ++pick->docs_used;
    if (Clock::now() - last_log > std::chrono::seconds(10)) {
      last_log = Clock::now();
      log_info("prepare: ", total_tokens(), " tokens, ", writer.chunks().size(), " chunks written");
    }
  }
  writer.finish();
  for (auto& s : sources_) {
    s.drops.merge(s.reader->drops());
    bytes_read_ += s.reader->bytes_read();
    if (s.docs_used == 0)
      HG_FAIL("source '", s.config->name, "' contributed no documents (", s.docs_read, " read, drops: ",
              s.drops.to_json().dump(), "); check its paths, format and filter");
  }
  if (writer.chunks().empty())
    HG_FAIL("no complete sequence of ", opt_.seq_len + 1, " tokens: the corpus (", total_tokens(),
            " tokens) is smaller than one row; lower --seq-len");
  PrepareResult result;
  result.manifest = build_manifest(writer, stop_reason);
  write_manifest(opt_.out_dir, result.manifest);  // last: the folder is complete from here on
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  result.bytes_read = bytes_read_;
  result.mb_per_s = result.seconds > 0 ? static_cast<double>(bytes_read_) / result.seconds / 1e6 : 0;
  result.tokenizer_bytes = encode_bytes_;
  result.tokenizer_seconds = static_cast<double>(encode_ns_) * 1e-9;
  result.tokenizer_mb_per_s_per_thread =
      result.tokenizer_seconds > 0 ? static_cast<double>(encode_bytes_) / result.tokenizer_seconds / 1e6 : 0;
  return result;
}

nlohmann::json Pipeline::build_manifest(const ChunkWriter& writer, const std::string& stop_reason) const {
  using nlohmann::json;
  const int64_t total = total_tokens();
  json sources = json::array();
  DropCounts drops;
  int64_t docs_read = 0, docs_kept = 0, docs_used = 0;
  bool within = true;
  for (const auto& s : sources_) {
    const double achieved = total > 0 ? static_cast<double>(s.tokens) / static_cast<double>(total) : 0;
    within = within && std::abs(achieved - s.config->share) <= opt_.share_tolerance;
    drops.merge(s.drops);
    docs_read += s.docs_read;
    docs_kept += s.docs_kept;
    docs_used += s.docs_used;
    json paths = s.config->paths;
    sources.push_back({{"name", s.config->name},
                       {"paths", paths},
                       {"format", s.config->format},
                       {"documents", s.config->documents},
                       {"filter_profile", s.config->filter.profile},
                       {"target_share", s.config->share},
                       {"achieved_share", achieved},
                       {"tokens", s.tokens},
                       {"bytes_read", s.reader->bytes_read()},
                       {"files", s.reader->file_count()},
                       {"files_read", s.reader->files_read()},
                       {"documents_read", s.docs_read},
                       {"documents_kept", s.docs_kept},
                       {"documents_used", s.docs_used},
                       {"utf8_repaired_documents", s.utf8_repaired},
                       {"utf8_invalid_sequences", s.invalid_sequences},
                       {"byte_cap_reached", s.reader->capped()},
                       {"exhausted", s.exhausted},
                       {"drops", s.drops.to_json()}});
  }
  json chunks = json::array();
  int64_t train_rows = 0, val_rows = 0;
  for (const auto& c : writer.chunks()) {
    chunks.push_back({{"index", c.index},
                      {"train", {{"file", c.train_file}, {"rows", c.train_rows}, {"tokens", c.train_rows * writer.row_len()}}},
                      {"val", {{"file", c.val_file}, {"rows", c.val_rows}, {"tokens", c.val_rows * writer.row_len()}}},
                      {"tokens", (c.train_rows + c.val_rows) * writer.row_len()}});
    train_rows += c.train_rows;
    val_rows += c.val_rows;
  }
  return {{"format", kManifestFormat},
          {"version", kManifestVersion},
          {"name", opt_.mix.name},
          {"dtype", "uint16"},
          {"layout", "chunk_NNNN_{train,val}.npy: uint16 [rows, seq_len + 1], rows shuffled"},
          {"seq_len", opt_.seq_len},
          {"row_len", writer.row_len()},
          {"chunk_tokens", opt_.chunk_tokens},
          {"rows_per_chunk", writer.rows_per_chunk()},
          {"val_fraction", opt_.val_fraction},
          {"seed", opt_.seed},
          {"tokenizer", {{"path", enc_.description()}, {"checksum", enc_.checksum()},
                         {"vocab_size", enc_.vocab_size()}, {"bos_id", enc_.bos_id()}, {"eos_id", enc_.eos_id()}}},
          {"dedup", {{"exact", opt_.mix.dedup.exact}, {"near", opt_.mix.dedup.near},
                     {"near_threshold", opt_.mix.dedup.near_threshold}, {"num_perm", opt_.mix.dedup.num_perm},
                     {"bands", opt_.mix.dedup.bands}, {"shingle_words", opt_.mix.dedup.shingle_words}}},
          {"stop_reason", stop_reason},
          {"max_tokens", opt_.max_tokens},
          {"share_tolerance", opt_.share_tolerance},
          {"shares_within_tolerance", within},
          {"sources", sources},
          {"documents", {{"read", docs_read}, {"kept", docs_kept}, {"used", docs_used}, {"dropped", drops.total()}}},
          {"drops", drops.to_json()},
          {"tokens", {{"total", total},
                      {"written", (train_rows + val_rows) * writer.row_len()},
                      {"train", train_rows * writer.row_len()},
                      {"val", val_rows * writer.row_len()},
                      {"tail_dropped", writer.tail_tokens_dropped()}}},
          {"bytes_read", bytes_read_},
          {"chunks", chunks},
          {"mix", opt_.mix.original}};
}

}  // namespace

PrepareResult run_prepare(const PrepareOptions& options, const Encoder& encoder) {
  Pipeline pipeline(options, encoder);
  return pipeline.run();
}

}  // namespace hessgpt::data

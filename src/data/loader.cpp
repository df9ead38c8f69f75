#include "data/loader.h"

#include <filesystem>

#include "core/error.h"
#include "data/manifest.h"

namespace hessgpt::data {
namespace fs = std::filesystem;

namespace {

uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

int64_t get_int(const nlohmann::json& j, const char* key, const std::string& where) {
  if (!j.contains(key) || !j[key].is_number_integer()) HG_FAIL(where, ": missing integer field '", key, "'");
  return j[key].get<int64_t>();
}

}  // namespace

std::string_view split_name(Split split) { return split == Split::kTrain ? "train" : "val"; }

// ---- Dataset ----------------------------------------------------------------

Dataset Dataset::open(const std::string& dir) {
  Dataset d;
  d.dir_ = dir;
  d.manifest_ = read_manifest(dir);
  const std::string where = (fs::path(dir) / kManifestName).string();
  d.seq_len_ = get_int(d.manifest_, "seq_len", where);
  if (get_int(d.manifest_, "row_len", where) != d.seq_len_ + 1) HG_FAIL(where, ": row_len is not seq_len + 1");
  const auto& tok = d.manifest_["tokenizer"];
  d.tokenizer_vocab_ = static_cast<int32_t>(get_int(tok, "vocab_size", where + ": tokenizer"));
  d.tokenizer_checksum_ = tok.value("checksum", "");
  for (size_t i = 0; i < d.manifest_["chunks"].size(); ++i) {
    const auto& c = d.manifest_["chunks"][i];
    const std::string at = where + ": chunks[" + std::to_string(i) + "]";
    if (!c.contains("train") || !c.contains("val")) HG_FAIL(at, ": missing 'train' or 'val'");
    ChunkInfo info;
    info.index = static_cast<int>(i);
    info.train_path = (fs::path(dir) / c["train"].value("file", "")).string();
    info.val_path = (fs::path(dir) / c["val"].value("file", "")).string();
    info.train_rows = get_int(c["train"], "rows", at + ".train");
    info.val_rows = get_int(c["val"], "rows", at + ".val");
    for (const auto& p : {info.train_path, info.val_path})
      if (!fs::is_regular_file(p)) HG_FAIL(at, ": chunk file '", p, "' is missing");
    d.chunks_.push_back(std::move(info));
  }
  return d;
}

const ChunkInfo& Dataset::chunk(int i) const {
  if (i < 0 || i >= num_chunks())
    HG_FAIL("chunk ", i, " out of range: '", dir_, "' has ", num_chunks(), " chunks");
  return chunks_[static_cast<size_t>(i)];
}

int64_t Dataset::rows(int i, Split split) const {
  const ChunkInfo& c = chunk(i);
  return split == Split::kTrain ? c.train_rows : c.val_rows;
}

int64_t Dataset::train_tokens() const {
  int64_t n = 0;
  for (const auto& c : chunks_) n += c.train_rows * row_len();
  return n;
}

int64_t Dataset::val_tokens() const {
  int64_t n = 0;
  for (const auto& c : chunks_) n += c.val_rows * row_len();
  return n;
}

// ---- LoaderState ------------------------------------------------------------

nlohmann::json LoaderState::to_json() const {
  return {{"chunk", chunk}, {"split", split}, {"order", order}, {"seed", seed},
          {"batch", batch}, {"seq", seq}, {"consumed", consumed}};
}

LoaderState LoaderState::from_json(const nlohmann::json& j) {
  LoaderState s;
  for (const char* key : {"chunk", "split", "order", "seed", "batch", "seq", "consumed"})
    if (!j.contains(key) || !j[key].is_number_integer()) HG_FAIL("loader state: missing integer field '", key, "'");
  s.chunk = j["chunk"].get<int64_t>();
  s.split = j["split"].get<int64_t>();
  s.order = j["order"].get<int64_t>();
  s.seed = j["seed"].get<uint64_t>();
  s.batch = j["batch"].get<int64_t>();
  s.seq = j["seq"].get<int64_t>();
  s.consumed = j["consumed"].get<int64_t>();
  return s;
}

// ---- BatchLoader ------------------------------------------------------------

BatchLoader::BatchLoader(const Dataset& data, int chunk, Split split, int64_t batch, int64_t seq,
                         Order order, uint64_t seed, int32_t vocab_size)
    : path_(split == Split::kTrain ? data.chunk(chunk).train_path : data.chunk(chunk).val_path),
      npy_(path_),
      chunk_(chunk), split_(split), order_(order), seed_(seed), batch_(batch), seq_(seq), vocab_(vocab_size) {
  if (batch < 1) HG_FAIL("batch size must be at least 1 (got ", batch, ")");
  if (seq < 1 || seq > data.seq_len())
    HG_FAIL("sequence length ", seq, " is not in [1, ", data.seq_len(), "]: '", data.dir(),
            "' was prepared with --seq-len ", data.seq_len());
  if (data.tokenizer_vocab_size() > vocab_size)
    HG_FAIL("'", data.dir(), "' was prepared with a ", data.tokenizer_vocab_size(),
            "-token vocabulary, larger than the model's vocab_size ", vocab_size);
  row_len_ = data.row_len();
  rows_ = data.rows(chunk, split);
  if (npy_.descr() != "<u2" || npy_.shape().size() != 2 || npy_.shape()[1] != row_len_ || npy_.shape()[0] != rows_)
    HG_FAIL(path_, ": expected uint16 [", rows_, ", ", row_len_, "] as the manifest says, found ", npy_.descr(),
            " with ", npy_.shape().size(), " dimensions");
  if (rows_ == 0)
    HG_FAIL("chunk ", chunk, " of '", data.dir(), "' has no ", split_name(split), " rows (val fraction 0?)");
  tokens_ = npy_.as<uint16_t>();
  windows_ = data.seq_len() / seq;
  examples_ = rows_ * windows_;
}

int64_t BatchLoader::example_at(int64_t position) const {
  const int64_t epoch = position / examples_;
  const int64_t k = position % examples_;
  if (order_ == Order::kSequential) return k;
  const FeistelPermutation perm(static_cast<uint64_t>(examples_), mix64(seed_ ^ mix64(static_cast<uint64_t>(epoch))));
  return static_cast<int64_t>(perm(static_cast<uint64_t>(k)));
}

void BatchLoader::next(std::span<int32_t> inputs, std::span<int32_t> targets) {
  const size_t n = static_cast<size_t>(batch_ * seq_);
  HG_CHECK(inputs.size() >= n && targets.size() >= n, "batch buffers hold ", inputs.size(), "/", targets.size(),
           " ids, need ", n);
  for (int64_t b = 0; b < batch_; ++b) {
    const int64_t ex = example_at(consumed_++);
    const int64_t row = ex / windows_, w = ex % windows_;
    const uint16_t* src = tokens_ + row * row_len_ + w * seq_;
    int32_t* in = inputs.data() + b * seq_;
    int32_t* tg = targets.data() + b * seq_;
    for (int64_t t = 0; t <= seq_; ++t) {
      const int32_t id = src[t];
      if (id >= vocab_)
        HG_FAIL(path_, ": row ", row, " column ", w * seq_ + t, " holds token id ", id,
                ", not below the vocabulary size ", vocab_, " (prepared with another tokenizer?)");
      if (t < seq_) in[t] = id;
      if (t > 0) tg[t - 1] = id;
    }
  }
}

LoaderState BatchLoader::state() const {
  return {chunk_, static_cast<int64_t>(split_), static_cast<int64_t>(order_), seed_, batch_, seq_, consumed_};
}

void BatchLoader::set_state(const LoaderState& s) {
  const LoaderState mine = state();
  if (s.chunk != mine.chunk || s.split != mine.split || s.order != mine.order || s.seed != mine.seed ||
      s.batch != mine.batch || s.seq != mine.seq)
    HG_FAIL("loader state was saved for ", s.to_json().dump(), " but this loader is ", mine.to_json().dump());
  if (s.consumed < 0) HG_FAIL("loader state: negative position ", s.consumed);
  consumed_ = s.consumed;
}

void BatchLoader::validate_all() const {
  const int64_t n = rows_ * row_len_;
  for (int64_t i = 0; i < n; ++i)
    if (tokens_[i] >= vocab_)
      HG_FAIL(path_, ": row ", i / row_len_, " column ", i % row_len_, " holds token id ", tokens_[i],
              ", not below the vocabulary size ", vocab_);
}

// ---- FeistelPermutation -----------------------------------------------------

FeistelPermutation::FeistelPermutation(uint64_t n, uint64_t key) : n_(n) {
  int bits = 2;
  while (bits < 64 && (uint64_t{1} << bits) < n) bits += 2;
  half_bits_ = bits / 2;
  half_mask_ = (uint64_t{1} << half_bits_) - 1;
  for (int r = 0; r < 4; ++r) keys_[r] = mix64(key + static_cast<uint64_t>(r) * 0x632BE59BD9B4E019ull);
}

uint64_t FeistelPermutation::operator()(uint64_t i) const {
  uint64_t x = i;
  do {  // cycle walking: re-encrypt until the value falls inside [0, n)
    uint64_t left = x >> half_bits_, right = x & half_mask_;
    for (const uint64_t k : keys_) {
      const uint64_t f = mix64(right ^ k) & half_mask_;
      const uint64_t next = left ^ f;
      left = right;
      right = next;
    }
    x = (left << half_bits_) | right;
  } while (x >= n_);
  return x;
}

}  // namespace hessgpt::data

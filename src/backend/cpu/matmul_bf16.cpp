#include "backend/cpu/matmul_bf16.h"

#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "core/bf16.h"
#include "core/error.h"

#ifdef HESSGPT_HAVE_DNNL
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace hessgpt::cpu {

void to_bf16(uint16_t* dst, const float* src, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) dst[i] = float_to_bf16(src[i]);
}

void from_bf16(float* dst, const uint16_t* src, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_float(src[i]);
}

#ifdef HESSGPT_HAVE_DNNL

struct Bf16Matmul::Impl {
  using Key = std::tuple<bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, bool>;
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  std::map<Key, std::pair<dnnl::matmul, dnnl::matmul::primitive_desc>> cache;
  std::vector<uint16_t> a16, b16;
  std::string impl = "none";
};

Bf16Matmul::Bf16Matmul() : impl_(std::make_unique<Impl>()) {}
Bf16Matmul::~Bf16Matmul() = default;
bool Bf16Matmul::compiled() { return true; }
const char* Bf16Matmul::last_impl() const { return impl_->impl.c_str(); }

void Bf16Matmul::run(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const void* a,
                     bool a_bf16, int64_t lda, const void* b, bool b_bf16, int64_t ldb, float beta,
                     float* c, int64_t ldc) {
  HG_CHECK(beta == 0.0f || beta == 1.0f, "BF16 matmul supports beta 0 or 1");
  using dt = dnnl::memory::data_type;
  // Operands keep their stored layout; strides express the transposes.
  const int64_t a_rows = ta ? k : m, b_rows = tb ? n : k;
  const dnnl::memory::desc a_md({m, k}, dt::bf16, ta ? dnnl::memory::dims{1, lda} : dnnl::memory::dims{lda, 1});
  const dnnl::memory::desc b_md({k, n}, dt::bf16, tb ? dnnl::memory::dims{1, ldb} : dnnl::memory::dims{ldb, 1});
  const dnnl::memory::desc c_md({m, n}, dt::f32, {ldc, 1});
  const Impl::Key key{ta, tb, m, n, k, lda, ldb, ldc, beta != 0.0f};
  auto it = impl_->cache.find(key);
  if (it == impl_->cache.end()) {
    dnnl::primitive_attr attr;
    if (beta != 0.0f) {
      dnnl::post_ops ops;
      ops.append_sum(1.0f);
      attr.set_post_ops(ops);
    }
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_md, c_md), attr, impl_->engine);
    impl_->impl = pd.impl_info_str();
    it = impl_->cache.emplace(key, std::make_pair(dnnl::matmul(pd), pd)).first;
  }
  // The BF16 operand: the caller's bits, or the F32 values rounded into a copy.
  const auto bf16_of = [](const void* x, bool is_bf16, int64_t count, std::vector<uint16_t>& copy) {
    if (is_bf16) return const_cast<void*>(x);
    copy.resize(static_cast<size_t>(count));
    to_bf16(copy.data(), static_cast<const float*>(x), count);
    return static_cast<void*>(copy.data());
  };
  dnnl::memory am(a_md, impl_->engine, bf16_of(a, a_bf16, a_rows * lda, impl_->a16));
  dnnl::memory bm(b_md, impl_->engine, bf16_of(b, b_bf16, b_rows * ldb, impl_->b16));
  dnnl::memory cm(c_md, impl_->engine, c);
  it->second.first.execute(impl_->stream,
                           {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
  impl_->stream.wait();
}

#else

struct Bf16Matmul::Impl {};
Bf16Matmul::Bf16Matmul() = default;
Bf16Matmul::~Bf16Matmul() = default;
bool Bf16Matmul::compiled() { return false; }
const char* Bf16Matmul::last_impl() const { return "none"; }
void Bf16Matmul::run(bool, bool, int64_t, int64_t, int64_t, const void*, bool, int64_t,
                     const void*, bool, int64_t, float, float*, int64_t) {
  HG_FAIL("BF16 matrix products need oneDNN (Debian libdnnl-dev) at build time");
}

#endif

}  // namespace hessgpt::cpu

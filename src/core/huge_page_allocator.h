// A std::allocator for large buffers that are streamed again and again (the
// weights that decoding reads once per token): 2 MiB-aligned and advised
// MADV_HUGEPAGE before their first touch, so that transparent huge pages back
// them where the kernel's THP mode is "madvise" (Debian's default). Streaming
// through 4 KiB pages costs a TLB miss per page, and a nested page walk under
// a hypervisor. Small requests take the ordinary heap.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdlib>
#include <new>

namespace hessgpt {

inline constexpr size_t kHugePageBytes = size_t{2} << 20;

template <typename T>
struct HugePageAllocator {
  using value_type = T;

  HugePageAllocator() noexcept = default;
  template <typename U>
  HugePageAllocator(const HugePageAllocator<U>&) noexcept {}

  static bool huge(size_t n) { return n * sizeof(T) >= kHugePageBytes; }
  static size_t rounded(size_t n) {
    return (n * sizeof(T) + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
  }

  T* allocate(size_t n) {
    if (!huge(n)) return static_cast<T*>(::operator new(n * sizeof(T)));
    void* p = std::aligned_alloc(kHugePageBytes, rounded(n));
    if (!p) throw std::bad_alloc();
    // Advice only: where THP is off the buffer is still valid, on 4 KiB pages.
    ::madvise(p, rounded(n), MADV_HUGEPAGE);
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t n) noexcept {
    if (huge(n)) std::free(p);
    else ::operator delete(p);
  }

  template <typename U>
  bool operator==(const HugePageAllocator<U>&) const noexcept { return true; }
};

}  // namespace hessgpt

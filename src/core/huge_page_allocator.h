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

// bytes (>= 1) rounded up to whole huge pages, 2 MiB-aligned and advised;
// nullptr when out of memory. Release with std::free.
inline void* huge_page_alloc(size_t bytes) {
  const size_t rounded = (bytes + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
  void* p = std::aligned_alloc(kHugePageBytes, rounded);
  // Advice only: where THP is off the buffer is still valid, on 4 KiB pages.
  if (p) ::madvise(p, rounded, MADV_HUGEPAGE);
  return p;
}

template <typename T>
struct HugePageAllocator {
  using value_type = T;

  HugePageAllocator() noexcept = default;
  template <typename U>
  HugePageAllocator(const HugePageAllocator<U>&) noexcept {}

  static bool huge(size_t n) { return n * sizeof(T) >= kHugePageBytes; }

  T* allocate(size_t n) {
    if (!huge(n)) return static_cast<T*>(::operator new(n * sizeof(T)));
    void* p = huge_page_alloc(n * sizeof(T));
    if (!p) throw std::bad_alloc();
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

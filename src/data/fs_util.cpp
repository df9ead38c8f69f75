#include "data/fs_util.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace hessgpt::data {

void fsync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) HG_FAIL("cannot open '", path, "' to sync it: ", std::strerror(errno));
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) HG_FAIL("fsync of '", path, "' failed: ", std::strerror(errno));
}

void rename_durably(const std::string& from, const std::string& to) {
  if (std::rename(from.c_str(), to.c_str()) != 0)
    HG_FAIL("cannot rename '", from, "' to '", to, "': ", std::strerror(errno));
  const std::string dir = std::filesystem::path(to).parent_path().string();
  fsync_path(dir.empty() ? "." : dir);
}

void write_file_atomic(const std::string& path, std::string_view content) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) HG_FAIL("cannot create '", tmp, "': ", std::strerror(errno));
  size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      ::close(fd);
      HG_FAIL("failed writing '", tmp, "': ", std::strerror(errno));
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) HG_FAIL("failed to sync '", tmp, "' (disk full?)");
  rename_durably(tmp, path);
}

}  // namespace hessgpt::data

#include "common/file_place.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include "common/errors.hpp"

namespace portghost {

// Like logrotate: a directory that other users may write to lets them swap
// the file for a link or a file of theirs (a FIFO, at the next rotation),
// so it is refused; so is one that another user owns (it can make itself
// the right to write there).
void check_file_place(const std::string& path, uid_t also_owner) {
  auto slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  struct stat st {};
  if (stat(dir.c_str(), &st) != 0) return;  // open() says what is wrong
  bool others = st.st_mode & S_IWOTH;
  bool group = (st.st_mode & S_IWGRP) && st.st_gid != 0;
  if (others || group)
    throw FatalError("refusing to write " + path + ": its directory " + dir + " is writable by " +
                     (others ? "every user" : "a group other than root") + " (use a directory only root can write)");
  if (st.st_uid != 0 && st.st_uid != geteuid() && st.st_uid != also_owner)
    throw FatalError("refusing to write " + path + ": its directory " + dir + " belongs to user " +
                     std::to_string(st.st_uid) + " (use a directory owned by root, or by the --user user)");
}

}  // namespace portghost

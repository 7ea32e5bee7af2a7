// Whether a directory is a safe place for a file portghost writes as root
// (its log, a raw dump): nobody but root, portghost itself or the user it
// becomes can add, remove or swap names in it.
#pragma once

#include <sys/types.h>

#include <string>

namespace portghost {

// Throws FatalError (one line) when the directory of `path` is writable by
// every user or by a group other than root's (as logrotate refuses), or is
// owned by another user than root, the effective user or `also_owner`
// (who can make itself the right to write there whenever it likes).
// A directory that cannot be read is left to open() to report.
void check_file_place(const std::string& path, uid_t also_owner = static_cast<uid_t>(-1));

}  // namespace portghost

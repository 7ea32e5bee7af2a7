// Text for people: bytes that a terminal would interpret are shown escaped.
#pragma once

#include <string>
#include <string_view>

namespace portghost {

// For the table: printable ASCII kept, anything else shown as \xNN.
std::string printable(std::string_view s);

}  // namespace portghost

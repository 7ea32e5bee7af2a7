#pragma once

namespace portghost {
inline constexpr const char* kVersion = "0.1.0";
}

#pragma once

namespace portghost {
inline constexpr const char* kVersion = "0.1.0";
// The log's contract (docs/event-schema.md), in the start record: 2 added
// the `life` record (a port's assign and release in one line).
inline constexpr unsigned kLogSchema = 2;
}  // namespace portghost

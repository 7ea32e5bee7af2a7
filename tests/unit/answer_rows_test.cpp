// The store's answers read within bounds: rows cut as the pieces come, each
// byte looked at once, no row past its bound, a bad host skipped.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <string>
#include <vector>

#include "common/errors.hpp"
#include "fleet/answer_rows.hpp"
#include "logs/log_reader.hpp"

using namespace portghost;

namespace {

std::vector<std::string> rows_of(const std::string& answer, size_t piece, size_t max_row = 100) {
  std::vector<std::string> rows;
  AnswerRows a("ClickHouse test", max_row, [&](std::string_view r) { rows.emplace_back(r); });
  for (size_t i = 0; i < answer.size(); i += piece) a.feed(std::string_view(answer).substr(i, piece));
  a.finish();
  return rows;
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const FatalError& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST(AnswerRows, RowsCutByPiecesOfEverySize) {
  std::string answer = "1\ta\tx\n\n22\tbb\tyy\n" + std::string(100, 'z') + "\n";
  std::vector<std::string> want = {"1\ta\tx", "", "22\tbb\tyy", std::string(100, 'z')};
  for (size_t piece : {1, 2, 3, 5, 16, 1000}) EXPECT_EQ(rows_of(answer, piece), want) << piece;
  EXPECT_NE(message_of([&] { rows_of(answer + "cut", 4); }).find("ended inside a row"), std::string::npos);
  EXPECT_NE(message_of([&] { rows_of(std::string(101, 'z') + "\n", 7); }).find("a row over 100 bytes"),
            std::string::npos);
}

// 64 MiB without a newline, in the HTTP client's 16 KiB pieces: refused once
// past the bound, in one line, without holding the rest or rescanning it.
TEST(AnswerRows, ARowWithoutEndIsRefusedPastItsBoundQuickly) {
  std::string piece(16u << 10, 'x');
  size_t rows = 0, taken = 0;
  AnswerRows a("ClickHouse h:8123/db.records", max_answer_row(), [&](std::string_view) { rows++; });
  // the HTTP client is told to stop as soon as the bound is passed: the
  // rest of the answer is never received
  for (size_t sent = 0; sent < (64u << 20) && a.feed(piece); sent += piece.size()) taken++;
  EXPECT_EQ(taken, max_answer_row() / piece.size()) << "every piece up to the bound, none after";
  EXPECT_FALSE(a.feed("\n1\t2\t3\n")) << "what follows the fault is not read";
  std::string why = message_of([&] { a.finish(); });
  EXPECT_NE(why.find("ClickHouse h:8123/db.records: the answer holds a row over 32 MiB"), std::string::npos) << why;
  EXPECT_EQ(why.find('\n'), std::string::npos);
  EXPECT_EQ(rows, 0u);
}

TEST(AnswerRows, AFaultOfTheRowReaderIsKeptForTheEnd) {
  AnswerRows a("ClickHouse test", 100, [](std::string_view r) {
    if (r == "bad") throw FatalError("bad row");
  });
  a.feed("ok\nbad\nok\n");  // never throws into the HTTP client
  EXPECT_EQ(message_of([&] { a.finish(); }), "bad row");
}

TEST(AnswerRows, TabSeparatedValuesAreUnescaped) {
  std::string out;
  append_unescaped(out, "a\\tb\\nc\\\\d\\'e\\0f\\");
  EXPECT_EQ(out, std::string("a\tb\nc\\d'e") + '\0' + "f\\");
  out.clear();
  append_unescaped(out, "{\"cmd\":\"a \\\\\"b\\\\\"\"}");
  EXPECT_EQ(out, "{\"cmd\":\"a \\\"b\\\"\"}");
}

// A host no portghost ships (a tab, a newline, too long) in a row: skipped
// and counted; every other row still answers.
TEST(SessionRows, ABadHostIsSkippedAndCountedAndSessionsGrouped) {
  struct Got {
    std::string key, text;
  };
  std::vector<Got> got;
  SessionRows s("ClickHouse test", [&](const std::string& key, const std::string& text, size_t size) {
    ASSERT_GE(text.size(), size + simdjson::SIMDJSON_PADDING);
    got.push_back({key, text.substr(0, size)});
  });
  std::string answer =
      "1\tweb-1\t{\"a\":1}\n1\tweb-1\t{\"b\":\"x\\\\ty\"}\n"
      "2\tweb\\t1\t{\"c\":1}\n2\tweb\\n1\t{\"c\":2}\n2\t" +
      std::string(kMaxHostName + 1, 'h') + "\t{\"c\":3}\n2\tweb-1\t{\"d\":1}\n";
  for (char c : answer) s.feed(std::string_view(&c, 1));
  s.finish();
  EXPECT_EQ(s.bad_hosts(), 3u);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].key, "1\tweb-1");
  EXPECT_EQ(got[0].text, "{\"a\":1}\n{\"b\":\"x\\ty\"}\n");
  EXPECT_EQ(got[1].key, "2\tweb-1");
  EXPECT_EQ(got[1].text, "{\"d\":1}\n");
  SessionRows bad("ClickHouse test", [](const std::string&, const std::string&, size_t) {});
  bad.feed("1\tno-line\n");
  EXPECT_NE(message_of([&] { bad.finish(); }).find("an answer row without its columns"), std::string::npos);
}

TEST(SessionRows, ALongSessionComesInPieces) {
  size_t pieces = 0, bytes = 0;
  SessionRows s("ClickHouse test", [&](const std::string& key, const std::string&, size_t size) {
    EXPECT_EQ(key, "7\tweb-1");
    pieces++;
    bytes += size;
  });
  std::string row = "7\tweb-1\t" + std::string(1000, 'l') + "\n";
  for (int i = 0; i < 20'000; i++) s.feed(row);
  s.finish();
  EXPECT_GE(pieces, 2u);
  EXPECT_EQ(bytes, 20'000u * 1001);
}

#include "data/doc_reader.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "data_test_util.h"

namespace hessgpt::data {

using testing::TempDir;
using testing::write_file;
using testing::write_gzip;

namespace {

SourceConfig source(const std::string& path, const std::string& format = "text",
                    const std::string& documents = "file") {
  SourceConfig s;
  s.name = "s";
  s.share = 1;
  s.paths = {path};
  s.format = format;
  s.documents = documents;
  return s;
}

std::vector<RawDoc> read_all(DocReader& r) {
  std::vector<RawDoc> out;
  while (auto d = r.next()) out.push_back(std::move(*d));
  return out;
}

}  // namespace

TEST(DocReader, OneDocumentPerFileWithIncludeExclude) {
  TempDir dir;
  write_file(dir / "a/one.txt", "first");
  write_file(dir / "a/two.txt", "second");
  write_file(dir / "a/skip.min.txt", "minified");
  write_file(dir / "a/sub/three.txt", "third");
  write_file(dir / "a/notes.md", "markdown");
  SourceConfig s = source(dir / "a");
  s.include = {"*.txt"};
  s.exclude = {"*.min.*", "*/sub/*"};
  DocReader r(s, 1);
  EXPECT_EQ(r.file_count(), 2);
  std::multiset<std::string> texts;
  for (auto& d : read_all(r)) texts.insert(d.text);
  EXPECT_EQ(texts, (std::multiset<std::string>{"first", "second"}));
}

TEST(DocReader, BlankLineAndHeadingDocuments) {
  TempDir dir;
  write_file(dir / "p.txt", "para one\nline two\n\n\npara two\n  \npara three\n");
  DocReader r(source(dir / "p.txt", "text", "blank-line"), 1);
  const auto docs = read_all(r);
  ASSERT_EQ(docs.size(), 3u);
  EXPECT_EQ(docs[0].text, "para one\nline two");
  EXPECT_EQ(docs[2].text, "para three");
  EXPECT_EQ(docs[1].origin, dir / "p.txt:5");

  write_file(dir / "d.txt", "alpha\n\n   first meaning\n\n   more on alpha\n\nbeta\n   b text\n");
  DocReader h(source(dir / "d.txt", "text", "heading"), 1);
  const auto entries = read_all(h);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].text, "alpha\n\n   first meaning\n\n   more on alpha");
  EXPECT_EQ(entries[1].text, "beta\n   b text");
}

TEST(DocReader, JsonlMalformedLinesAndInvalidUtf8AreCountedNotFatal) {
  TempDir dir;
  write_file(dir / "c.jsonl",
             "{\"text\": \"good one\"}\n"
             "{\"text\": \"broken\n"                       // malformed
             "not json at all\n"                          // malformed
             "[1, 2]\n"                                   // not an object
             "{\"body\": \"no text field\"}\n"            // missing field
             "{\"text\": 42}\n"                           // not a string
             "\n"                                         // blank: ignored
             "{\"text\": \"bad \xFF byte\"}\n"            // invalid UTF-8 inside a string
             "{\"meta\": {\"t\": \"nested\"}, \"text\": \"good two\"}\n");
  DocReader r(source(dir / "c.jsonl", "jsonl"), 1);
  const auto docs = read_all(r);
  ASSERT_EQ(docs.size(), 3u);
  EXPECT_EQ(docs[0].text, "good one");
  EXPECT_EQ(docs[1].text, "bad \xEF\xBF\xBD byte");  // repaired
  EXPECT_EQ(docs[1].invalid_utf8, 1);
  EXPECT_EQ(docs[2].origin, dir / "c.jsonl:9");
  EXPECT_EQ(r.drops().get(DropReason::kMalformedJson), 3);
  EXPECT_EQ(r.drops().get(DropReason::kMissingTextField), 2);

  SourceConfig nested = source(dir / "c.jsonl", "jsonl");
  nested.text_field = "meta.t";
  nested.utf8 = "drop";
  DocReader n(nested, 1);
  const auto only = read_all(n);
  ASSERT_EQ(only.size(), 1u);
  EXPECT_EQ(only[0].text, "nested");
  EXPECT_EQ(n.drops().get(DropReason::kInvalidUtf8), 1);
}

TEST(DocReader, ReadsGzipDirectlyAndCountsCorruptFiles) {
  TempDir dir;
  write_gzip(dir / "z/a.jsonl.gz", "{\"text\": \"zipped one\"}\n{\"text\": \"zipped two\"}\n");
  write_file(dir / "z/b.jsonl.gz", std::string("\x1f\x8b\x08\x00garbage-not-deflate", 22));
  DocReader r(source(dir / "z", "jsonl"), 1);
  const auto docs = read_all(r);
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[1].text, "zipped two");
  EXPECT_EQ(r.drops().get(DropReason::kUnreadable), 1);
}

TEST(DocReader, JsonFilesCollectTextFieldsWithLabels) {
  TempDir dir;
  write_file(dir / "fr.json",
             R"({"Intro": {"Background": {"text": "France is a country."}},
                 "Geo": {"Location": {"text": "Western Europe"}, "Area": {"total": {"text": "643,801 sq km"}}}})");
  SourceConfig s = source(dir / "fr.json", "json");
  s.json_labels = true;
  DocReader r(s, 1);
  const auto docs = read_all(r);
  ASSERT_EQ(docs.size(), 1u);
  EXPECT_EQ(docs[0].text, "Background: France is a country.\nLocation: Western Europe\nArea / total: 643,801 sq km");
}

TEST(DocReader, ByteCapAndSplitting) {
  TempDir dir;
  for (int i = 0; i < 10; ++i) write_file(dir / ("f/" + std::to_string(i) + ".txt"), std::string(1000, 'a' + i));
  SourceConfig s = source(dir / "f");
  s.max_bytes = 2500;
  DocReader r(s, 1);
  EXPECT_EQ(read_all(r).size(), 3u);  // stops once 2500 bytes are read
  EXPECT_TRUE(r.capped());

  write_file(dir / "long.txt", "line one\nline two\nline three\nline four\n");
  SourceConfig sp = source(dir / "long.txt");
  sp.split_chars = 20;
  DocReader p(sp, 1);
  const auto parts = read_all(p);
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[0].text, "line one\nline two\n");
  EXPECT_EQ(parts[0].text + parts[1].text + parts[2].text, "line one\nline two\nline three\nline four\n");
}

TEST(DocReader, MissingPathIsAClearError) {
  try {
    DocReader r(source("/nonexistent/corpus"), 1);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/corpus"), std::string::npos);
  }
}

}  // namespace hessgpt::data

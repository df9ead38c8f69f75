// <|logic|> tasks: exact symbol manipulation a language model gets wrong by
// guessing (it sees tokens, not letters): counting letters, vowels and words,
// reversing, upper-casing, sorting. Results are computed here exactly as the
// recorded Python program computes them.
#include <algorithm>
#include <sstream>

#include "data/synth/routed_tasks.h"

namespace hessgpt::synth {
namespace {

using chat::RouteKind;

// Lower-case ASCII words; every 4th is held out for evaluation (synth_util.h).
const std::vector<std::string>& words() {
  static const std::vector<std::string> k = {
      "strawberry", "banana",    "elephant",  "mississippi", "computer",   "keyboard",  "pineapple",
      "butterfly",  "mountain",  "library",   "chocolate",   "umbrella",   "giraffe",   "hospital",
      "tomato",     "calendar",  "bicycle",   "avocado",     "triangle",   "sandwich",  "penguin",
      "language",   "possible",  "committee", "apple",       "orange",     "lemon",     "cherry",
      "river",      "window",    "garden",    "teacher",     "engineer",   "pyramid",   "volcano",
      "dinosaur",   "alphabet",  "necessary", "balloon",     "coffee",     "bookkeeper","letter",
      "success",    "address",   "parallel",  "tennessee",   "assessment", "occurrence","rhythm",
      "queue",      "algorithm", "function",  "variable",    "database",   "network",   "printer",
      "monday",     "october",   "summer",    "winter",      "kitchen",    "blanket",   "pencil",
      "notebook",   "airplane",  "harbor",    "island",      "desert",     "forest",    "meadow",
      "village",    "castle",    "dragon",    "wizard",      "planet",     "galaxy",    "comet",
      "rocket",     "satellite", "oxygen",    "hydrogen",    "carbon",     "crystal",   "diamond",
      "emerald",    "silver",    "copper",    "marble",      "granite",    "puzzle",    "riddle",
      "journey",    "holiday",   "festival",  "concert",     "violin",     "trumpet",   "guitar",
      "piano",      "melody",    "harmony",   "painting",    "sculpture",  "museum",    "theater",
      "cinema",     "camera",    "picture",   "shadow",      "sunlight",   "rainbow",   "thunder",
      "lightning",  "blizzard",  "hurricane", "tornado",     "squirrel",   "rabbit",    "kangaroo",
      "dolphin",    "octopus",   "jellyfish", "flamingo",    "peacock",    "sparrow",   "eagle",
      "turtle",     "lizard",    "hamster",   "parrot",      "zebra",      "buffalo",   "coconut",
      "mango",      "papaya",    "raspberry", "blueberry",   "broccoli",   "cucumber",  "potato",
      "pumpkin",    "spinach",   "noodle",    "biscuit",     "pancake",    "waffle",    "cookie",
      "quiet",      "happy",     "bright",    "gentle",      "simple",     "careful",   "little",
      "yellow",     "purple",    "green",     "blue",        "red",        "black",     "white"};
  return k;
}

std::string random_words(Rng& rng, Split split, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) {
    if (i) s += ' ';
    s += pick(rng, words(), split);
  }
  return s;
}

RoutedTask logic(std::string task) {
  RoutedTask t;
  t.task = std::move(task);
  t.kind = RouteKind::kLogic;
  t.language = "python";
  return t;
}

std::string plural(int64_t n, const std::string& one, const std::string& many) {
  return str_cat(n, " ", n == 1 ? one : many);
}

const std::vector<std::string> kCountLetter = {
    "How many times does the letter {l} appear in {w}?", "How many {l}'s are in the word {w}?",
    "Count the {l}s in '{w}'.", "How many times does '{l}' occur in \"{w}\"?",
    "In the word {w}, how many {l}'s are there?", "How often does the letter '{l}' show up in '{w}'?",
    "Can you count how many {l}'s the word {w} has?", "Number of '{l}' letters in {w}?",
    "How many {l} are in {w}?", "Count the letter {l} in the word \"{w}\".", "Tell me how many {l}'s {w} contains.",
    "In '{w}', count the occurrences of '{l}'."};
const std::vector<std::string> kVowels = {
    "How many vowels are in {w}?", "Count the vowels in '{w}'.", "How many vowels does the word {w} have?",
    "What is the number of vowels in \"{w}\"?", "Can you count the vowels in {w}?",
    "Tell me how many vowels are in the word '{w}'.", "Vowel count for {w}?", "How many of the letters in {w} are vowels?"};
const std::vector<std::string> kLength = {
    "How many letters are in {w}?", "How long is the word {w}?", "Count the letters in '{w}'.",
    "How many characters does \"{w}\" have?", "What is the length of the word {w}?",
    "How many letters does the word '{w}' have?", "Tell me the number of letters in {w}.",
    "What's the letter count of {w}?"};
const std::vector<std::string> kWords = {
    "How many words are in this sentence: {s}?", "Count the words in \"{s}\".", "How many words does '{s}' have?",
    "Word count for: {s}", "How many words are there in \"{s}\"?", "Can you count the words in '{s}'?",
    "Tell me how many words this has: {s}", "Count how many words are in: {s}"};
const std::vector<std::string> kReverse = {
    "Reverse the word {w}.", "What is {w} spelled backwards?", "Write '{w}' backwards.",
    "Can you reverse the string \"{w}\"?", "Spell {w} in reverse.", "What do you get if you reverse '{w}'?",
    "Reverse the letters of {w}.", "Give me {w} backwards.", "Flip the string '{w}' around.",
    "How is '{w}' written in reverse order?", "Please reverse \"{w}\".", "Backwards, what is {w}?"};
const std::vector<std::string> kUpper = {
    "Convert '{s}' to uppercase.", "Write \"{s}\" in capital letters.", "Make '{s}' all caps.",
    "What is '{s}' in upper case?", "Uppercase this: {s}", "Can you capitalise every letter of \"{s}\"?",
    "Turn '{s}' into uppercase letters.", "Rewrite {s} in all capitals."};
const std::vector<std::string> kSort = {
    "Sort these words alphabetically: {s}", "Put '{s}' in alphabetical order.",
    "Can you sort the words \"{s}\" alphabetically?", "Arrange these words in alphabetical order: {s}",
    "Alphabetise: {s}", "Order the words '{s}' from A to Z.", "Sort the following words: {s}",
    "What are the words '{s}' in alphabetical order?"};

RoutedTask count_letter(Split split, Rng& rng) {
  RoutedTask t = logic("count_letter");
  const std::string w = pick(rng, words(), split);
  // Mostly a letter of the word; sometimes one it lacks (answer 0).
  char l = w[rng.below(w.size())];
  if (chance(rng, 0.15)) {
    for (int tries = 0; tries < 26 && w.find(l) != std::string::npos; ++tries) {
      l = static_cast<char>('a' + rng.below(26));
    }
  }
  const std::string L(1, l);
  const int64_t r = std::count(w.begin(), w.end(), l);
  t.user = fill(pick(rng, kCountLetter, split), {{"l", L}, {"w", w}});
  t.request = str_cat("Count the letter ", py_str(L), " in ", py_str(w));
  t.program = str_cat("print(", py_str(w), ".count(", py_str(L), "))");
  t.result = py_int(r);
  t.answer = str_cat("The letter '", L, "' appears ", plural(r, "time", "times"), " in '", w, "'.");
  return t;
}

RoutedTask count_vowels(Split split, Rng& rng) {
  RoutedTask t = logic("count_vowels");
  const std::string w = pick(rng, words(), split);
  const int64_t r = std::count_if(w.begin(), w.end(), [](char c) { return std::string_view("aeiou").find(c) != std::string_view::npos; });
  t.user = fill(pick(rng, kVowels, split), {{"w", w}});
  t.request = str_cat("Count the vowels in ", py_str(w));
  t.program = str_cat("print(sum(1 for c in ", py_str(w), " if c in 'aeiou'))");
  t.result = py_int(r);
  t.answer = str_cat("'", w, "' has ", plural(r, "vowel", "vowels"), ".");
  return t;
}

RoutedTask word_length(Split split, Rng& rng) {
  RoutedTask t = logic("word_length");
  const std::string w = pick(rng, words(), split);
  t.user = fill(pick(rng, kLength, split), {{"w", w}});
  t.request = str_cat("Count the letters in ", py_str(w));
  t.program = str_cat("print(len(", py_str(w), "))");
  t.result = py_int(static_cast<int64_t>(w.size()));
  t.answer = str_cat("'", w, "' has ", t.result, " letters.");
  return t;
}

RoutedTask count_words(Split split, Rng& rng) {
  RoutedTask t = logic("count_words");
  const int n = static_cast<int>(uniform_int(rng, 2, 8));
  std::string s = random_words(rng, split, n);
  if (chance(rng, 0.5)) s = capitalise_first(s);
  t.user = fill(pick(rng, kWords, split), {{"s", s}});
  t.request = str_cat("Count the words in ", py_str(s));
  t.program = str_cat("print(len(", py_str(s), ".split()))");
  t.result = py_int(n);
  t.answer = str_cat("That sentence has ", plural(n, "word", "words"), ".");
  return t;
}

RoutedTask reverse(Split split, Rng& rng) {
  RoutedTask t = logic("reverse");
  const std::string w = pick(rng, words(), split);
  t.user = fill(pick(rng, kReverse, split), {{"w", w}});
  t.request = str_cat("Reverse ", py_str(w));
  t.program = str_cat("print(", py_str(w), "[::-1])");
  t.result = std::string(w.rbegin(), w.rend());
  t.answer = str_cat("'", w, "' reversed is '", t.result, "'.");
  return t;
}

RoutedTask uppercase(Split split, Rng& rng) {
  RoutedTask t = logic("uppercase");
  const std::string s = random_words(rng, split, static_cast<int>(uniform_int(rng, 1, 4)));
  t.user = fill(pick(rng, kUpper, split), {{"s", s}});
  t.request = str_cat("Convert ", py_str(s), " to uppercase");
  t.program = str_cat("print(", py_str(s), ".upper())");
  t.result = s;
  for (char& c : t.result) c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
  t.answer = str_cat("In uppercase: ", t.result, ".");
  return t;
}

RoutedTask sort_words(Split split, Rng& rng) {
  RoutedTask t = logic("sort_words");
  const int n = static_cast<int>(uniform_int(rng, 3, 6));
  std::vector<std::string> ws;
  for (int i = 0; i < n; ++i) ws.push_back(pick(rng, words(), split));
  std::string s;
  for (const auto& w : ws) s += (s.empty() ? "" : " ") + w;
  std::sort(ws.begin(), ws.end());  // byte order = Python's code-point order for ASCII
  std::string sorted;
  for (const auto& w : ws) sorted += (sorted.empty() ? "" : " ") + w;
  t.user = fill(pick(rng, kSort, split), {{"s", s}});
  t.request = str_cat("Sort the words in ", py_str(s), " alphabetically");
  t.program = str_cat("print(' '.join(sorted(", py_str(s), ".split())))");
  t.result = sorted;
  t.answer = str_cat("In alphabetical order: ", sorted, ".");
  return t;
}

}  // namespace

const std::vector<std::string>& logic_task_names() {
  static const std::vector<std::string> k = {"count_letter", "count_vowels", "word_length", "count_words",
                                             "reverse",      "uppercase",    "sort_words"};
  return k;
}

RoutedTask make_logic_task(std::string_view name, Split split, Rng& rng) {
  if (name == "count_letter") return count_letter(split, rng);
  if (name == "count_vowels") return count_vowels(split, rng);
  if (name == "word_length") return word_length(split, rng);
  if (name == "count_words") return count_words(split, rng);
  if (name == "reverse") return reverse(split, rng);
  if (name == "uppercase") return uppercase(split, rng);
  if (name == "sort_words") return sort_words(split, rng);
  HG_FAIL("unknown logic task '", name, "'");
}

std::vector<TemplateCount> logic_template_counts() {
  return {{"count_letter", kCountLetter.size()}, {"count_vowels", kVowels.size()}, {"word_length", kLength.size()},
          {"count_words", kWords.size()},        {"reverse", kReverse.size()},     {"uppercase", kUpper.size()},
          {"sort_words", kSort.size()}};
}

}  // namespace hessgpt::synth

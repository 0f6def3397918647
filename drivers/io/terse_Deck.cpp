// terse_Deck.cpp: parsing and checking of the input deck (docs/deck.md), its overrides and its effective text.
#include "terse_Deck.hpp"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <sstream>
#include <utility>

namespace terse {

namespace {

// ------------------------------------------------------------------------------------------------ names

constexpr std::array<const char*, 5> kProblemKinds{{"quadratic", "rosenbrock", "logistic", "mlp", "cnn"}};
constexpr std::array<const char*, 2> kNoiseCoords{{"first", "all"}};
constexpr std::array<const char*, 2> kDataFormats{{"libsvm", "fashion_mnist"}};
constexpr std::array<const char*, 17> kOptimizerKinds{{"sgd", "majority_vote", "stochastic_sign", "ef_signsgd",
                                                       "amsgrad", "amsgrad_naive", "amsgrad_ef", "cd_adam", "ef21",
                                                       "adagrad", "local_sgd", "local_adaalter", "onebit_adam",
                                                       "signum", "qsgd", "ef_qsgd", "terngrad"}};
constexpr std::array<const char*, 3> kLrSchedules{{"constant", "inv_sqrt", "adaptive"}};
constexpr std::array<const char*, 2> kVoteModes{{"workers", "samples"}};
constexpr std::array<const char*, 2> kAcceptRules{{"always", "descent"}};
constexpr std::array<const char*, 3> kCompressors{{"scaled_sign", "top_k", "rand_k"}};
constexpr std::array<const char*, 2> kBroadcasts{{"markov", "mean"}};
constexpr std::array<const char*, 2> kEstimateStarts{{"zero", "gradient"}};
constexpr std::array<const char*, 2> kDenseProducts{{"library", "fixed_order"}};
constexpr std::array<const char*, 2> kPaddings{{"same", "valid"}};

constexpr std::array<const char*, 4> kSections{{"problem", "optimizer", "run", "workers"}};

// Every key of every section, in the order of docs/deck.md (the key table below).
const std::vector<std::string>& section_keys(const std::string& section);

bool is_section(const std::string& s) { return std::find(kSections.begin(), kSections.end(), s) != kSections.end(); }

bool is_key(const std::string& section, const std::string& key) {
  const auto& keys = section_keys(section);
  return std::find(keys.begin(), keys.end(), key) != keys.end();
}

template <std::size_t N>
std::string join(const std::array<const char*, N>& names) {
  std::string s;
  for (std::size_t i = 0; i < N; ++i) s += (i ? ", " : "") + std::string(names[i]);
  return s;
}

// ------------------------------------------------------------------------------------------------ suggestions

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

/// The candidate nearest to `name` by edit distance when it is close enough (a third of the name's length, at
/// least 1), or one that contains the name (or is contained in it, 3 characters or more); "" otherwise.
std::string nearest(const std::string& name, const std::vector<std::string>& candidates) {
  std::string best;
  std::size_t best_d = std::numeric_limits<std::size_t>::max();
  for (const auto& c : candidates) {
    const std::size_t d = edit_distance(name, c);
    if (d < best_d) best_d = d, best = c;
  }
  if (!best.empty() && best_d <= std::max<std::size_t>(1, name.size() / 3)) return best;
  if (name.size() >= 3) {
    for (const auto& c : candidates)
      if (c.find(name) != std::string::npos) return c;
    for (const auto& c : candidates)
      if (c.size() >= 3 && name.find(c) != std::string::npos) return c;
  }
  return "";
}

/// " (did you mean 'x'?)" for an unknown key of `section`: a near key of the section, else the same key in
/// another section ("optimizer.lr" for "problem.lr").
std::string key_hint(const std::string& section, const std::string& key) {
  std::string near = nearest(key, section_keys(section));
  if (!near.empty()) return "did you mean '" + near + "'?";
  for (const char* other : kSections)
    if (other != section && is_key(other, key)) return "did you mean '" + std::string(other) + "." + key + "'?";
  return "";
}

std::string section_hint(const std::string& name) {
  std::string near = nearest(name, std::vector<std::string>(kSections.begin(), kSections.end()));
  if (!near.empty()) return "did you mean '" + near + "'?";
  for (const char* s : kSections)
    if (is_key(s, name)) return "did you mean '" + std::string(s) + "." + name + "'?";
  return "";
}

// ------------------------------------------------------------------------------------------------ numbers

/// Shortest "%.{p}g" text of a finite double that reads back to the same double, with ".0" added when it
/// would otherwise look like an integer.
std::string format_double(double v) {
  char buf[64];
  for (int p = 1; p <= 17; ++p) {
    std::snprintf(buf, sizeof buf, "%.*g", p, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  std::string s(buf);
  if (s.find_first_of(".eEni") == std::string::npos) s += ".0";
  return s;
}

bool is_decimal_integer(const std::string& s) {
  std::size_t i = (!s.empty() && (s[0] == '+' || s[0] == '-')) ? 1 : 0;
  if (i == s.size()) return false;
  if (s[i] == '0' && i + 1 < s.size()) return false;  // 010: octal in YAML 1.1, decimal in 1.2; refused
  for (; i < s.size(); ++i)
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
  return true;
}

/// YAML 1.2 core-schema decimal: [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
bool is_decimal_number(const std::string& s) {
  std::size_t i = 0;
  const auto digits = [&]() {
    const std::size_t start = i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
    return i - start;
  };
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  std::size_t mantissa = digits();
  if (i < s.size() && s[i] == '.') {
    ++i;
    mantissa += digits();
  }
  if (mantissa == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    if (digits() == 0) return false;
  }
  return i == s.size();
}

bool is_nonfinite_word(std::string s) {
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) s.erase(0, 1);
  if (!s.empty() && s[0] == '.') s.erase(0, 1);
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s == "inf" || s == "infinity" || s == "nan";
}

// ------------------------------------------------------------------------------------------------ the parser

/// One key's value: from the deck (with the 1-based line of its key) or from a --set.
struct Entry {
  YAML::Node value;
  int line = 0;          ///< 1-based line of the key in the deck; 0 for --set
  std::string set_text;  ///< the --set argument it came from
};

std::string node_kind(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
      return "a null (no value)";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Scalar:
      return "'" + n.Scalar() + "'";
    default:
      return "nothing";
  }
}

/// A scalar written with quotes (or tagged !!str) is a string, never a number.
bool is_quoted_string(const YAML::Node& n) {
  return n.IsScalar() && (n.Tag() == "!" || n.Tag() == "tag:yaml.org,2002:str");
}

class Parser {
 public:
  explicit Parser(std::string name) : name_(std::move(name)) {}

  Deck parse(const std::string& text, const std::vector<std::string>& overrides) {
    load(text);
    for (const auto& o : overrides) apply_override(o);
    Deck deck;
    deck.path = name_;
    for (const char* s : kSections) parse_section(s, deck);
    if (deck.run.checkpoint_path == deck.run.output)
      fail("run.checkpoint.path: the checkpoint and the history (run.output) are the same file, " + deck.run.output);
    return deck;
  }

  std::string name_;
  std::map<std::string, std::map<std::string, Entry>> sections_;
  std::map<std::string, int> section_lines_;

  [[noreturn]] void fail(const std::string& msg) const { throw DeckError(name_ + ": " + msg); }

  static std::string where(const Entry& e) {
    return e.line > 0 ? " (line " + std::to_string(e.line) + ")" : " (from --set " + e.set_text + ")";
  }

  [[noreturn]] void fail_value(const std::string& skey, const Entry& e, const std::string& msg) const {
    fail(skey + ": " + msg + where(e));
  }

  // ---------------------------------------------------------------------------------------- structure

  /// Counts the documents of a YAML text without building them, and stops where yaml-cpp would not: its
  /// LoadAll never returns on a text that starts with a flow entry (",", ", a": every call yields another
  /// empty document at the same place; found by tests/fuzz/fuzz_deck).
  struct DocumentCounter : YAML::EventHandler {
    int documents = 0;
    bool stuck = false;
    YAML::Mark last, stuck_at;
    void OnDocumentStart(const YAML::Mark& m) override {
      if (documents > 0 && m.pos == last.pos) {
        stuck = true;
        stuck_at = m;
      }
      last = m;
      ++documents;
    }
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
    void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
    void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
    void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
    void OnMapEnd() override {}
  };

  void load(const std::string& text) {
    std::vector<YAML::Node> docs;
    try {
      std::istringstream in(text);
      YAML::Parser parser(in);
      DocumentCounter counter;
      while (!counter.stuck && parser.HandleNextDocument(counter)) {
      }
      if (counter.stuck)
        throw DeckError(name_ + ":" + std::to_string(counter.stuck_at.line + 1) + ":" +
                        std::to_string(counter.stuck_at.column + 1) +
                        ": YAML syntax error: unexpected ',' outside a flow collection ([...] or {...})");
      docs = YAML::LoadAll(text);
    } catch (const YAML::Exception& e) {
      if (e.mark.is_null()) fail("YAML syntax error: " + e.msg);
      throw DeckError(name_ + ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1) +
                      ": YAML syntax error: " + e.msg);
    }
    if (docs.size() > 1)
      fail("holds " + std::to_string(docs.size()) + " YAML documents (separated by '---'); a deck is one");
    if (docs.empty() || docs[0].IsNull())
      fail("empty deck: expected the sections problem, optimizer, run (and optionally workers)");
    const YAML::Node& root = docs[0];
    if (!root.IsMap())
      fail("the top level must be a mapping of sections (problem, optimizer, run, workers), got " + node_kind(root));
    for (auto it = root.begin(); it != root.end(); ++it) {
      const int line = it->first.Mark().line + 1;
      if (!it->first.IsScalar())
        fail("a top-level key at line " + std::to_string(line) + " is " + node_kind(it->first) +
             ", not a section name");
      const std::string section = it->first.Scalar();
      if (!is_section(section)) {
        const std::string hint = section_hint(section);
        fail("unknown section '" + section + "' (line " + std::to_string(line) + (hint.empty() ? "" : "; " + hint) +
             "); the sections are problem, optimizer, run, workers");
      }
      if (section_lines_.count(section))
        fail("duplicate section '" + section + "' (lines " + std::to_string(section_lines_[section]) + " and " +
             std::to_string(line) + ")");
      section_lines_[section] = line;
      auto& entries = sections_[section];
      const YAML::Node body = it->second;  // a copy: it->second lives in a temporary proxy
      if (body.IsNull()) continue;  // `workers:` with nothing under it: all defaults
      if (!body.IsMap())
        fail("section '" + section + "' (line " + std::to_string(line) + ") must be a mapping of keys, got " +
             node_kind(body));
      for (auto kt = body.begin(); kt != body.end(); ++kt) {
        const int kline = kt->first.Mark().line + 1;
        if (!kt->first.IsScalar())
          fail("a key of section '" + section + "' at line " + std::to_string(kline) + " is " + node_kind(kt->first) +
               ", not a name");
        const std::string key = kt->first.Scalar();
        const std::string skey = section + "." + key;
        if (!is_key(section, key)) {
          const std::string hint = key_hint(section, key);
          fail("unknown key '" + skey + "' (line " + std::to_string(kline) + (hint.empty() ? "" : "; " + hint) + ")");
        }
        auto found = entries.find(key);
        if (found != entries.end())
          fail("duplicate key '" + skey + "' (lines " + std::to_string(found->second.line) + " and " +
               std::to_string(kline) + ")");
        entries[key] = Entry{kt->second, kline, ""};
      }
    }
  }

  void apply_override(const std::string& text) {
    const std::string bad = "bad --set '" + text + "': ";
    const std::size_t eq = text.find('=');
    if (eq == std::string::npos) fail(bad + "expected section.key=value");
    const auto trim = [](std::string s) {
      const auto sp = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
      while (!s.empty() && sp(s.back())) s.pop_back();
      while (!s.empty() && sp(s.front())) s.erase(0, 1);
      return s;
    };
    const std::string lhs = trim(text.substr(0, eq));
    const std::size_t dot = lhs.find('.');
    if (dot == std::string::npos) {
      std::string hint;
      for (const char* s : kSections)
        if (is_key(s, lhs)) hint = " (did you mean '" + std::string(s) + "." + lhs + "'?)";
      fail(bad + "expected section.key=value, got no section in '" + lhs + "'" + hint);
    }
    std::string section = lhs.substr(0, dot), key = lhs.substr(dot + 1);
    // run.checkpoint.path / run.checkpoint.every: one entry of the run.checkpoint mapping.
    std::string sub;
    if (section == "run" && key.rfind("checkpoint.", 0) == 0) {
      sub = key.substr(std::string("checkpoint.").size());
      key = "checkpoint";
      if (sub != "path" && sub != "every") fail(bad + "unknown key '" + lhs + "' (run.checkpoint has path and every)");
    }
    if (!is_section(section)) {
      const std::string hint = section_hint(section);
      fail(bad + "unknown section '" + section + "'" + (hint.empty() ? "" : " (" + hint + ")"));
    }
    if (!is_key(section, key)) {
      const std::string hint = key_hint(section, key);
      fail(bad + "unknown key '" + lhs + "'" + (hint.empty() ? "" : " (" + hint + ")"));
    }
    YAML::Node value;
    try {
      value = YAML::Load(text.substr(eq + 1));
    } catch (const YAML::Exception& e) {
      fail(bad + "YAML syntax error in the value: " + e.msg);
    }
    if (!sub.empty()) {
      // Merge into the deck's run.checkpoint mapping (or start one).
      auto& entries = sections_[section];
      auto found = entries.find(key);
      YAML::Node map = found != entries.end() && found->second.value.IsMap() ? YAML::Clone(found->second.value)
                                                                               : YAML::Node(YAML::NodeType::Map);
      map[sub] = value;
      entries[key] = Entry{map, 0, text};
      return;
    }
    sections_[section][key] = Entry{value, 0, text};
  }

  const Entry* find(const std::string& section, const std::string& key) const {
    auto s = sections_.find(section);
    if (s == sections_.end()) return nullptr;
    auto k = s->second.find(key);
    return k == s->second.end() ? nullptr : &k->second;
  }

  [[noreturn]] void fail_required(const std::string& section, const std::string& key, const std::string& why) const {
    std::string msg = section + "." + key + ": required" + why;
    if (!sections_.count(section)) msg += " (the deck has no section '" + section + "')";
    fail(msg);
  }

  // ---------------------------------------------------------------------------------------- values

  /// A plain decimal integer in [lo, hi].
  template <class Int>
  Int read_int(const std::string& skey, const Entry& e, Int lo, Int hi = std::numeric_limits<Int>::max()) const {
    const YAML::Node& n = e.value;
    if (!n.IsScalar() || is_quoted_string(n) || !is_decimal_integer(n.Scalar()))
      fail_value(skey, e,
                 std::string("expected an integer, got ") + (is_quoted_string(n) ? "the string " : "") + node_kind(n));
    const std::string& s = n.Scalar();
    const bool negative = s[0] == '-';
    errno = 0;
    const unsigned long long mag = std::strtoull(s.c_str() + ((s[0] == '-' || s[0] == '+') ? 1 : 0), nullptr, 10);
    bool ok = errno == 0;
    Int v{};
    if (negative && mag != 0) {
      if (!std::numeric_limits<Int>::is_signed) fail_value(skey, e, "must be >= " + std::to_string(lo) + ", got " + s);
      const unsigned long long lim = static_cast<unsigned long long>(std::numeric_limits<Int>::max()) + 1;
      ok = ok && mag <= lim;
      if (ok) v = mag == lim ? std::numeric_limits<Int>::min() : static_cast<Int>(-static_cast<Int>(mag));
    } else {
      ok = ok && mag <= static_cast<unsigned long long>(std::numeric_limits<Int>::max());
      if (ok) v = static_cast<Int>(mag);
    }
    if (!ok) fail_value(skey, e, "integer out of range, got " + s);
    if (v < lo || v > hi) {
      std::string range = hi == std::numeric_limits<Int>::max()
                              ? ">= " + std::to_string(lo)
                              : "in " + std::to_string(lo) + ".." + std::to_string(hi);
      fail_value(skey, e, "must be " + range + ", got " + s);
    }
    return v;
  }

  /// A finite number (YAML decimal or integer).
  double read_number(const std::string& skey, const Entry& e) const {
    const YAML::Node& n = e.value;
    if (n.IsScalar() && !is_quoted_string(n) && is_nonfinite_word(n.Scalar()))
      fail_value(skey, e, "must be a finite number, got " + node_kind(n));
    if (!n.IsScalar() || is_quoted_string(n) || !is_decimal_number(n.Scalar()))
      fail_value(skey, e,
                 std::string("expected a number, got ") + (is_quoted_string(n) ? "the string " : "") + node_kind(n));
    const double v = std::strtod(n.Scalar().c_str(), nullptr);
    if (!std::isfinite(v)) fail_value(skey, e, "must be a finite number, got " + n.Scalar() + " (overflow)");
    return v;
  }

  enum class Bound { none, open, closed };
  /// A number in the interval given by (lo, lo_b) and (hi, hi_b): Bound::none leaves that side free.
  double read_number_in(const std::string& skey, const Entry& e, double lo, Bound lo_b, double hi = 0,
                        Bound hi_b = Bound::none) const {
    const double v = read_number(skey, e);
    const bool lo_ok = lo_b == Bound::none || (lo_b == Bound::open ? v > lo : v >= lo);
    const bool hi_ok = hi_b == Bound::none || (hi_b == Bound::open ? v < hi : v <= hi);
    if (!lo_ok || !hi_ok) {
      std::string range;
      const auto num = [](double x) {
        char b[32];
        std::snprintf(b, sizeof b, "%g", x);
        return std::string(b);
      };
      if (hi_b == Bound::none)
        range = (lo_b == Bound::open ? "> " : ">= ") + num(lo);
      else
        range = std::string("in ") + (lo_b == Bound::open ? "(" : "[") + num(lo) + ", " + num(hi) +
                (hi_b == Bound::open ? ")" : "]");
      fail_value(skey, e, "must be " + range + ", got " + e.value.Scalar());
    }
    return v;
  }

  template <class E, std::size_t N>
  E read_enum(const std::string& skey, const Entry& e, const std::array<const char*, N>& names) const {
    const YAML::Node& n = e.value;
    if (n.IsScalar())
      for (std::size_t i = 0; i < N; ++i)
        if (n.Scalar() == names[i]) return static_cast<E>(i);
    std::string hint;
    if (n.IsScalar()) {
      const std::string near = nearest(n.Scalar(), std::vector<std::string>(names.begin(), names.end()));
      if (!near.empty()) hint = " (did you mean '" + near + "'?)";
    }
    fail_value(skey, e, "expected one of " + join(names) + ", got " + node_kind(n) + hint);
  }

  std::string read_path(const std::string& skey, const Entry& e) const {
    const YAML::Node& n = e.value;
    if (!n.IsScalar()) fail_value(skey, e, "expected a path, got " + node_kind(n));
    if (n.Scalar().empty()) fail_value(skey, e, "expected a path, got an empty string");
    return n.Scalar();
  }

  std::array<int, 2> read_classes(const std::string& skey, const Entry& e) const {
    const YAML::Node& n = e.value;
    const std::string what = "expected a list of two distinct integers in 0..9";
    if (!n.IsSequence()) fail_value(skey, e, what + ", got " + node_kind(n));
    if (n.size() != 2) fail_value(skey, e, what + ", got " + std::to_string(n.size()) + " entries");
    std::array<int, 2> c{};
    for (std::size_t i = 0; i < 2; ++i) {
      const Entry item{n[i], e.line, e.set_text};
      c[i] = static_cast<int>(read_int<std::int64_t>(skey + "[" + std::to_string(i) + "]", item, 0, 9));
    }
    if (c[0] == c[1]) fail_value(skey, e, what + ", got the class " + std::to_string(c[0]) + " twice");
    return c;
  }

  /// The cnn's two channel counts: a list of two integers in 1..4096.
  std::array<std::int64_t, 2> read_channels(const std::string& skey, const Entry& e) const {
    const YAML::Node& n = e.value;
    const std::string what = "expected a list of two channel counts (the two convolutions' outputs), e.g. [32, 64]";
    if (!n.IsSequence()) fail_value(skey, e, what + ", got " + node_kind(n));
    if (n.size() != 2) fail_value(skey, e, what + ", got " + std::to_string(n.size()) + " entries");
    std::array<std::int64_t, 2> c{};
    for (std::size_t i = 0; i < 2; ++i) {
      const Entry item{n[i], e.line, e.set_text};
      c[i] = read_int<std::int64_t>(skey + "[" + std::to_string(i) + "]", item, 1, 4096);
    }
    return c;
  }

  // ---------------------------------------------------------------------------------------- sections

  /// Reads the keys of `section` into deck as the key table says (defined below the table).
  void parse_section(const std::string& section, Deck& deck) const;
};

// ------------------------------------------------------------------------------------------------ emitting

void emit_number(YAML::Emitter& out, const std::string& key, double v) {
  out << YAML::Key << key << YAML::Value << format_double(v);
}
template <class Int>
void emit_integer(YAML::Emitter& out, const std::string& key, Int v) {
  out << YAML::Key << key << YAML::Value << std::to_string(v);
}
void emit_word(YAML::Emitter& out, const std::string& key, const char* v) {
  out << YAML::Key << key << YAML::Value << v;
}
/// Paths are always double-quoted: `true`, `123`, `a: b` stay strings.
void emit_path(YAML::Emitter& out, const std::string& key, const std::string& v) {
  out << YAML::Key << key << YAML::Value << YAML::DoubleQuoted << v;
}

// ------------------------------------------------------------------------------------------------ the keys
//
// Every key of the deck is declared once, here: its section and name, where it is stored, how it is read
// (type and range), what happens when the deck leaves it out (a default that depends on other keys, or a
// required-key error), which problems or algorithms use it, and how it is written to the effective deck and
// compared. The parser, --set, the effective deck written to the history, Deck equality, the unused-key errors
// and accepted_keys() (which tests/tstDeck.cpp checks against docs/deck.md) all read this table; the order of
// the table is the order of docs/deck.md and of the effective deck.

using Bound = Parser::Bound;

struct KeySpec {
  std::string section, name;
  /// 0: the section's kind, read first; 1: a key that decides whether others are used, read (when used)
  /// before the unused keys are refused; 2: the others, read in table order.
  int phase = 2;
  /// Why the deck's problem or algorithm does not use the key ("problem.kind mlp"), "" when it does. Reads only
  /// the phase 0 and 1 keys.
  std::function<std::string(const Deck&)> unused;
  std::function<void(const Parser&, const Entry&, Deck&)> read;
  /// When the deck does not give the key (and it is used): a default that depends on other keys, or a
  /// required-key error. Empty: the struct's initial value stands.
  std::function<void(const Parser&, Deck&)> absent;
  /// Writes the key to the effective deck (the unused keys are not asked; a key may write nothing).
  std::function<void(YAML::Emitter&, const Deck&)> emit;
  std::function<bool(const Deck&, const Deck&)> same;
  std::string skey() const { return section + "." + name; }
};

template <class S>
S& part(Deck& d);
template <>
ProblemConfig& part<ProblemConfig>(Deck& d) { return d.problem; }
template <>
OptimizerConfig& part<OptimizerConfig>(Deck& d) { return d.optimizer; }
template <>
RunConfig& part<RunConfig>(Deck& d) { return d.run; }
template <>
WorkersConfig& part<WorkersConfig>(Deck& d) { return d.workers; }
template <class S>
const S& part(const Deck& d) { return part<S>(const_cast<Deck&>(d)); }
template <class S>
const char* section_of();
template <>
const char* section_of<ProblemConfig>() { return "problem"; }
template <>
const char* section_of<OptimizerConfig>() { return "optimizer"; }
template <>
const char* section_of<RunConfig>() { return "run"; }
template <>
const char* section_of<WorkersConfig>() { return "workers"; }

using Unused = std::function<std::string(const Deck&)>;
const Unused always_used = [](const Deck&) { return std::string(); };

/// The common part of a key stored in one member m of section S.
template <class S, class T>
KeySpec member_key(const char* name, T S::*m, Unused unused) {
  KeySpec k;
  k.section = section_of<S>();
  k.name = name;
  k.unused = std::move(unused);
  k.same = [m](const Deck& a, const Deck& b) { return part<S>(a).*m == part<S>(b).*m; };
  return k;
}

/// A number in the interval (lo, lo_b), (hi, hi_b) (Bound::none: that side free).
template <class S>
KeySpec number_key(const char* name, double S::*m, Unused unused, double lo, Bound lo_b, double hi = 0,
                   Bound hi_b = Bound::none) {
  KeySpec k = member_key(name, m, std::move(unused));
  const std::string sk = k.skey();
  k.read = [=](const Parser& p, const Entry& e, Deck& d) { part<S>(d).*m = p.read_number_in(sk, e, lo, lo_b, hi, hi_b); };
  k.emit = [=](YAML::Emitter& out, const Deck& d) { emit_number(out, name, part<S>(d).*m); };
  return k;
}

/// An optional number (unset until given).
template <class S>
KeySpec optional_number_key(const char* name, std::optional<double> S::*m, Unused unused, double lo, Bound lo_b) {
  KeySpec k = member_key(name, m, std::move(unused));
  const std::string sk = k.skey();
  k.read = [=](const Parser& p, const Entry& e, Deck& d) { part<S>(d).*m = p.read_number_in(sk, e, lo, lo_b); };
  k.emit = [=](YAML::Emitter& out, const Deck& d) {
    if (part<S>(d).*m) emit_number(out, name, *(part<S>(d).*m));
  };
  return k;
}

/// An integer >= lo.
template <class S, class Int>
KeySpec integer_key(const char* name, Int S::*m, Unused unused, Int lo) {
  KeySpec k = member_key(name, m, std::move(unused));
  const std::string sk = k.skey();
  k.read = [=](const Parser& p, const Entry& e, Deck& d) { part<S>(d).*m = p.read_int<Int>(sk, e, lo); };
  k.emit = [=](YAML::Emitter& out, const Deck& d) { emit_integer(out, name, part<S>(d).*m); };
  return k;
}

/// One of the names of an enum.
template <class S, class E, std::size_t N>
KeySpec enum_key(const char* name, E S::*m, const std::array<const char*, N>& names, Unused unused, int phase = 2) {
  KeySpec k = member_key(name, m, std::move(unused));
  k.phase = phase;
  const std::string sk = k.skey();
  k.read = [=](const Parser& p, const Entry& e, Deck& d) { part<S>(d).*m = p.read_enum<E>(sk, e, names); };
  k.emit = [=](YAML::Emitter& out, const Deck& d) { emit_word(out, name, names[static_cast<std::size_t>(part<S>(d).*m)]); };
  return k;
}

/// A path (a non-empty string).
template <class S>
KeySpec path_key(const char* name, std::string S::*m, Unused unused) {
  KeySpec k = member_key(name, m, std::move(unused));
  const std::string sk = k.skey();
  k.read = [=](const Parser& p, const Entry& e, Deck& d) { part<S>(d).*m = p.read_path(sk, e); };
  k.emit = [=](YAML::Emitter& out, const Deck& d) { emit_path(out, name, part<S>(d).*m); };
  return k;
}

/// "Used by these problem kinds" (the reason names the deck's kind otherwise).
Unused problems(std::initializer_list<ProblemKind> kinds) {
  const std::vector<ProblemKind> set(kinds);
  return [set](const Deck& d) {
    return std::find(set.begin(), set.end(), d.problem.kind) != set.end()
               ? std::string()
               : std::string("problem.kind ") + to_string(d.problem.kind);
  };
}
/// "Used by these optimizer kinds".
Unused algorithms(std::initializer_list<OptimizerKind> kinds) {
  const std::vector<OptimizerKind> set(kinds);
  return [set](const Deck& d) {
    return std::find(set.begin(), set.end(), d.optimizer.kind) != set.end()
               ? std::string()
               : std::string("optimizer.kind ") + to_string(d.optimizer.kind);
  };
}

const std::vector<KeySpec>& key_table() {
  using PK = ProblemKind;
  using K = OptimizerKind;
  using P = ProblemConfig;
  using O = OptimizerConfig;
  using R = RunConfig;
  static const std::vector<KeySpec> table = [] {
    std::vector<KeySpec> t;
    // ---- problem ----
    {
      KeySpec k = enum_key("kind", &P::kind, kProblemKinds, always_used, 0);
      k.absent = [](const Parser& p, Deck&) { p.fail_required("problem", "kind", " (one of " + join(kProblemKinds) + ")"); };
      t.push_back(k);
    }
    {
      KeySpec k = member_key("dim", &P::dim, problems({PK::quadratic, PK::rosenbrock, PK::logistic}));
      k.read = [](const Parser& p, const Entry& e, Deck& d) {
        d.problem.dim = p.read_int<std::int64_t>("problem.dim", e, 1);
        if (d.problem.kind == PK::rosenbrock && *d.problem.dim < 2)
          p.fail_value("problem.dim", e, "must be >= 2 for problem.kind rosenbrock, got " + e.value.Scalar());
      };
      k.absent = [](const Parser& p, Deck& d) {
        if (d.problem.kind == PK::quadratic) p.fail_required("problem", "dim", " for problem.kind quadratic");
        if (d.problem.kind == PK::rosenbrock) d.problem.dim = 10;
      };
      k.emit = [](YAML::Emitter& out, const Deck& d) {
        if (d.problem.dim) emit_integer(out, "dim", *d.problem.dim);
      };
      t.push_back(k);
    }
    {
      KeySpec k = member_key("x0", &P::x0, problems({PK::quadratic, PK::rosenbrock}));
      k.read = [](const Parser& p, const Entry& e, Deck& d) { d.problem.x0 = p.read_number("problem.x0", e); };
      k.absent = [](const Parser&, Deck& d) {
        if (d.problem.kind == PK::rosenbrock) d.problem.x0 = 0.0;
      };
      k.emit = [](YAML::Emitter& out, const Deck& d) { emit_number(out, "x0", d.problem.x0); };
      t.push_back(k);
    }
    t.push_back(number_key("noise_std", &P::noise_std, problems({PK::quadratic, PK::rosenbrock}), 0, Bound::closed));
    t.push_back(enum_key("noise_coords", &P::noise_coords, kNoiseCoords, problems({PK::quadratic})));
    t.push_back(number_key("lambda", &P::lambda, problems({PK::logistic}), 0, Bound::closed));
    const auto by_format = [](DataFormat f) -> Unused {
      return [f](const Deck& d) {
        if (d.problem.kind != PK::logistic) return std::string("problem.kind ") + to_string(d.problem.kind);
        return d.problem.data_format == f ? std::string() : std::string("problem.data_format ") + to_string(d.problem.data_format);
      };
    };
    {
      KeySpec k = member_key("data", &P::data, by_format(DataFormat::libsvm));
      k.read = [](const Parser& p, const Entry& e, Deck& d) { d.problem.data = p.read_path("problem.data", e); };
      k.absent = [](const Parser& p, Deck& d) {
        if (d.problem.kind == PK::logistic && d.problem.data_format == DataFormat::libsvm)
          p.fail_required("problem", "data", " when problem.data_format is libsvm");
      };
      k.emit = [](YAML::Emitter& out, const Deck& d) {
        if (d.problem.data) emit_path(out, "data", *d.problem.data);
      };
      t.push_back(k);
    }
    t.push_back(enum_key("data_format", &P::data_format, kDataFormats, problems({PK::logistic}), 1));
    {
      KeySpec k = member_key("classes", &P::classes, by_format(DataFormat::fashion_mnist));
      k.read = [](const Parser& p, const Entry& e, Deck& d) { d.problem.classes = p.read_classes("problem.classes", e); };
      k.emit = [](YAML::Emitter& out, const Deck& d) {
        out << YAML::Key << "classes" << YAML::Value << YAML::Flow << YAML::BeginSeq
            << std::to_string(d.problem.classes[0]) << std::to_string(d.problem.classes[1]) << YAML::EndSeq;
      };
      t.push_back(k);
    }
    {
      KeySpec k = integer_key("hidden", &P::hidden, problems({PK::mlp, PK::cnn}), std::int64_t{1});
      k.absent = [](const Parser&, Deck& d) { d.problem.hidden = d.problem.kind == PK::cnn ? 512 : 64; };
      t.push_back(k);
    }
    {
      KeySpec k = member_key("channels", &P::channels, problems({PK::cnn}));
      k.read = [](const Parser& p, const Entry& e, Deck& d) { d.problem.channels = p.read_channels("problem.channels", e); };
      k.emit = [](YAML::Emitter& out, const Deck& d) {
        out << YAML::Key << "channels" << YAML::Value << YAML::Flow << YAML::BeginSeq
            << std::to_string(d.problem.channels[0]) << std::to_string(d.problem.channels[1]) << YAML::EndSeq;
      };
      t.push_back(k);
    }
    t.push_back(enum_key("padding", &P::padding, kPaddings, problems({PK::cnn})));
    t.push_back(enum_key("products", &P::products, kDenseProducts, problems({PK::mlp, PK::cnn})));
    const Unused images = [](const Deck& d) {  // the networks' files, and logistic's with data_format fashion_mnist
      if (image_classifier(d.problem.kind)) return std::string();
      if (d.problem.kind == PK::logistic)
        return d.problem.data_format == DataFormat::fashion_mnist
                   ? std::string()
                   : std::string("problem.data_format ") + to_string(d.problem.data_format);
      return std::string("problem.kind ") + to_string(d.problem.kind);
    };
    t.push_back(path_key("train_images", &P::train_images, images));
    t.push_back(path_key("train_labels", &P::train_labels, images));
    t.push_back(path_key("test_images", &P::test_images, problems({PK::mlp, PK::cnn})));
    t.push_back(path_key("test_labels", &P::test_labels, problems({PK::mlp, PK::cnn})));

    // ---- optimizer ----
    {
      KeySpec k = enum_key("kind", &O::kind, kOptimizerKinds, always_used, 0);
      const auto read = k.read;
      k.read = [read](const Parser& p, const Entry& e, Deck& d) {
        read(p, e, d);
        if (d.optimizer.kind == K::ef21) d.optimizer.compressor = Compressor::top_k;
      };
      k.absent = [](const Parser& p, Deck&) {
        p.fail_required("optimizer", "kind", " (one of " + join(kOptimizerKinds) + ")");
      };
      t.push_back(k);
    }
    {
      KeySpec k = number_key("lr", &O::lr, always_used, 0, Bound::open);
      k.absent = [](const Parser& p, Deck&) { p.fail_required("optimizer", "lr", " (a step size > 0)"); };
      t.push_back(k);
    }
    const Unused vote_only = algorithms({K::majority_vote});
    t.push_back(enum_key("lr_schedule", &O::lr_schedule, kLrSchedules, vote_only, 1));
    {
      KeySpec k = optional_number_key("lipschitz", &O::lipschitz,
                                      [](const Deck& d) {
                                        if (d.optimizer.kind != K::majority_vote)
                                          return std::string("optimizer.kind ") + to_string(d.optimizer.kind);
                                        return d.optimizer.lr_schedule == LrSchedule::adaptive
                                                   ? std::string()
                                                   : std::string("optimizer.lr_schedule ") + to_string(d.optimizer.lr_schedule);
                                      },
                                      0, Bound::open);
      k.absent = [](const Parser& p, Deck& d) {
        if (d.optimizer.kind == K::majority_vote && d.optimizer.lr_schedule == LrSchedule::adaptive)
          p.fail_required("optimizer", "lipschitz", " when optimizer.lr_schedule is adaptive");
      };
      t.push_back(k);
    }
    t.push_back(enum_key("vote", &O::vote, kVoteModes, vote_only));
    t.push_back(enum_key("accept", &O::accept, kAcceptRules, vote_only));
    const Unused markov = algorithms({K::cd_adam, K::ef21});
    t.push_back(enum_key("compressor", &O::compressor, kCompressors, markov, 1));
    t.push_back(number_key("k_ratio", &O::k_ratio,
                           [markov](const Deck& d) {
                             const std::string why = markov(d);
                             if (!why.empty()) return why;
                             return d.optimizer.compressor != Compressor::scaled_sign
                                        ? std::string()
                                        : std::string("optimizer.compressor ") + to_string(d.optimizer.compressor);
                           },
                           0, Bound::open, 1, Bound::closed));
    t.push_back(enum_key("broadcast", &O::broadcast, kBroadcasts, markov));
    t.push_back(enum_key("estimate_start", &O::estimate_start, kEstimateStarts, markov));
    const Unused adam = algorithms({K::amsgrad, K::amsgrad_naive, K::amsgrad_ef, K::cd_adam, K::onebit_adam});
    t.push_back(number_key("beta1", &O::beta1, adam, 0, Bound::closed, 1, Bound::open));
    t.push_back(number_key("beta2", &O::beta2, adam, 0, Bound::closed, 1, Bound::open));
    t.push_back(number_key("nu", &O::nu, adam, 0, Bound::open));
    t.push_back(number_key("eps", &O::eps, algorithms({K::adagrad, K::local_adaalter}), 0, Bound::open));
    t.push_back(integer_key("sync_period", &O::sync_period, algorithms({K::local_sgd, K::local_adaalter}),
                            std::int64_t{1}));
    t.push_back(number_key("b0", &O::b0, algorithms({K::local_adaalter}), 0, Bound::open));
    {
      KeySpec k = member_key("warmup_steps", &O::warmup_steps, algorithms({K::local_adaalter, K::onebit_adam}));
      k.read = [](const Parser& p, const Entry& e, Deck& d) {
        d.optimizer.warmup_steps =
            p.read_int<std::int64_t>("optimizer.warmup_steps", e, d.optimizer.kind == K::onebit_adam ? 1 : 0);
      };
      k.absent = [](const Parser& p, Deck& d) {
        if (d.optimizer.kind == K::onebit_adam)
          p.fail_required("optimizer", "warmup_steps",
                          " for onebit_adam (uncompressed Adam steps before the variance is frozen, >= 1)");
      };
      k.emit = [](YAML::Emitter& out, const Deck& d) { emit_integer(out, "warmup_steps", d.optimizer.warmup_steps); };
      t.push_back(k);
    }
    t.push_back(number_key("momentum", &O::momentum, algorithms({K::signum}), 0, Bound::closed, 1, Bound::open));
    t.push_back(number_key("weight_decay", &O::weight_decay, algorithms({K::signum}), 0, Bound::closed));
    t.push_back(integer_key("levels", &O::levels, algorithms({K::qsgd, K::ef_qsgd}), std::int64_t{1}));
    t.push_back(integer_key("bucket", &O::bucket, algorithms({K::qsgd, K::ef_qsgd, K::terngrad}), std::int64_t{1}));

    // ---- run ----
    {
      KeySpec k = integer_key("iterations", &R::iterations, always_used, std::int64_t{1});
      k.absent = [](const Parser& p, Deck&) { p.fail_required("run", "iterations", " (the number of updates, >= 1)"); };
      t.push_back(k);
    }
    {
      KeySpec k = member_key("batch", &R::batch, always_used);
      k.read = [](const Parser& p, const Entry& e, Deck& d) {
        if (e.value.IsScalar() && e.value.Scalar() == "full") {
          d.run.batch_full = true;
          d.run.batch = 0;
          return;
        }
        if (!e.value.IsScalar() || is_quoted_string(e.value) || !is_decimal_integer(e.value.Scalar()))
          p.fail_value("run.batch", e, "expected an integer >= 1 or 'full', got " + node_kind(e.value));
        d.run.batch = p.read_int<std::int64_t>("run.batch", e, 1);
      };
      k.emit = [](YAML::Emitter& out, const Deck& d) {
        if (d.run.batch_full) emit_word(out, "batch", "full");
        else emit_integer(out, "batch", d.run.batch);
      };
      k.same = [](const Deck& a, const Deck& b) { return a.run.batch_full == b.run.batch_full && a.run.batch == b.run.batch; };
      t.push_back(k);
    }
    t.push_back(integer_key("seed", &R::seed, always_used, std::uint64_t{0}));
    {
      KeySpec k = integer_key("log_every", &R::log_every, always_used, std::int64_t{1});
      k.absent = [](const Parser&, Deck& d) { d.run.log_every = std::max<std::int64_t>(1, d.run.iterations / 100); };
      t.push_back(k);
    }
    t.push_back(integer_key("objective_every", &R::objective_every, always_used, std::int64_t{0}));
    t.push_back(integer_key("objective_sample", &R::objective_sample, problems({PK::mlp, PK::cnn}), std::int64_t{1}));
    t.push_back(path_key("output", &R::output, always_used));
    t.push_back(number_key("watchdog", &R::watchdog, always_used, 0, Bound::closed));
    {
      KeySpec k = member_key("exchange_chunk", &R::exchange_chunk, always_used);
      k.read = [](const Parser& p, const Entry& e, Deck& d) {
        if (e.value.IsScalar() && !is_quoted_string(e.value) && e.value.Scalar() == "auto") {
          d.run.exchange_chunk = RunConfig::exchange_chunk_auto;
          return;
        }
        if (!e.value.IsScalar() || is_quoted_string(e.value) || !is_decimal_integer(e.value.Scalar()))
          p.fail_value("run.exchange_chunk", e, "expected an integer >= 0 or 'auto', got " + node_kind(e.value));
        d.run.exchange_chunk = p.read_int<std::int64_t>("run.exchange_chunk", e, 0);
      };
      k.emit = [](YAML::Emitter& out, const Deck& d) {
        if (d.run.exchange_chunk == RunConfig::exchange_chunk_auto) emit_word(out, "exchange_chunk", "auto");
        else emit_integer(out, "exchange_chunk", d.run.exchange_chunk);
      };
      t.push_back(k);
    }
    {
      KeySpec k = integer_key("success_probability_samples", &R::success_probability_samples, always_used,
                              std::int64_t{0});
      k.emit = [](YAML::Emitter& out, const Deck& d) {
        if (d.run.success_probability_samples > 0)
          emit_integer(out, "success_probability_samples", d.run.success_probability_samples);
      };
      t.push_back(k);
    }
    {
      KeySpec k = member_key("checkpoint", &R::checkpoint_every, always_used);
      k.read = [](const Parser& p, const Entry& e, Deck& d) {
        RunConfig& r = d.run;
        r.checkpoint_path = default_checkpoint_path(r.output);
        const YAML::Node& n = e.value;
        if (!n.IsMap()) p.fail_value("run.checkpoint", e, "expected a mapping {path: FILE.h5, every: N}, got " + node_kind(n));
        bool has_every = false;
        for (auto it = n.begin(); it != n.end(); ++it) {
          const std::string sub = it->first.IsScalar() ? it->first.Scalar() : std::string("?");
          const int line = it->first.Mark().is_null() || e.line == 0 ? e.line : it->first.Mark().line + 1;
          const Entry item{it->second, line, e.set_text};
          if (sub == "path") {
            r.checkpoint_path = p.read_path("run.checkpoint.path", item);
          } else if (sub == "every") {
            r.checkpoint_every = p.read_int<std::int64_t>("run.checkpoint.every", item, 1);
            has_every = true;
          } else {
            p.fail_value("run.checkpoint." + sub, item, "unknown key (run.checkpoint has path and every)");
          }
        }
        if (!has_every) p.fail_value("run.checkpoint", e, "every: required (write a checkpoint every N updates, N >= 1)");
      };
      k.absent = [](const Parser&, Deck& d) { d.run.checkpoint_path = default_checkpoint_path(d.run.output); };
      k.emit = [](YAML::Emitter& out, const Deck& d) {
        if (d.run.checkpoint_every <= 0) return;
        out << YAML::Key << "checkpoint" << YAML::Value << YAML::Flow << YAML::BeginMap;
        emit_path(out, "path", d.run.checkpoint_path);
        emit_integer(out, "every", d.run.checkpoint_every);
        out << YAML::EndMap;
      };
      k.same = [](const Deck& a, const Deck& b) {
        return a.run.checkpoint_path == b.run.checkpoint_path && a.run.checkpoint_every == b.run.checkpoint_every;
      };
      t.push_back(k);
    }

    // ---- workers ----
    t.push_back(integer_key("per_rank", &WorkersConfig::per_rank, always_used, std::int64_t{1}));
    return t;
  }();
  return table;
}

const std::vector<std::string>& section_keys(const std::string& section) {
  static const std::map<std::string, std::vector<std::string>> keys = [] {
    std::map<std::string, std::vector<std::string>> m;
    for (const char* s : kSections) m[s];
    for (const auto& k : key_table()) m[k.section].push_back(k.name);
    return m;
  }();
  static const std::vector<std::string> none;
  auto it = keys.find(section);
  return it == keys.end() ? none : it->second;
}

void Parser::parse_section(const std::string& section, Deck& deck) const {
  const auto& table = key_table();
  const auto in_section = [&](const KeySpec& k) { return k.section == section; };
  // The kind, then the keys that decide whether others are used (when their problem or algorithm uses them).
  for (int phase : {0, 1})
    for (const auto& k : table) {
      if (!in_section(k) || k.phase != phase) continue;
      const Entry* e = find(section, k.name);
      if (e && k.unused(deck).empty()) k.read(*this, *e, deck);
      else if (!e && k.absent) k.absent(*this, deck);
    }
  // A key the deck gives but its problem or algorithm does not use is refused, in the order of the docs.
  for (const auto& k : table) {
    if (!in_section(k)) continue;
    const Entry* e = find(section, k.name);
    if (!e) continue;
    const std::string why = k.unused(deck);
    if (!why.empty()) fail_value(k.skey(), *e, "not used by " + why);
  }
  for (const auto& k : table) {
    if (!in_section(k) || k.phase != 2) continue;
    if (const Entry* e = find(section, k.name)) k.read(*this, *e, deck);
    else if (k.absent) k.absent(*this, deck);
  }
}

/// Whether every key of `section` (all of them, used or not) is equal in a and b.
bool same_section(const Deck& a, const Deck& b, const std::string& section) {
  for (const auto& k : key_table())
    if (k.section == section && !k.same(a, b)) return false;
  return true;
}

}  // namespace

// ------------------------------------------------------------------------------------------------ public

const char* to_string(ProblemKind v) { return kProblemKinds[static_cast<std::size_t>(v)]; }
const char* to_string(NoiseCoords v) { return kNoiseCoords[static_cast<std::size_t>(v)]; }
const char* to_string(DataFormat v) { return kDataFormats[static_cast<std::size_t>(v)]; }
const char* to_string(OptimizerKind v) { return kOptimizerKinds[static_cast<std::size_t>(v)]; }
const char* to_string(LrSchedule v) { return kLrSchedules[static_cast<std::size_t>(v)]; }
const char* to_string(VoteMode v) { return kVoteModes[static_cast<std::size_t>(v)]; }
const char* to_string(AcceptRule v) { return kAcceptRules[static_cast<std::size_t>(v)]; }
const char* to_string(Compressor v) { return kCompressors[static_cast<std::size_t>(v)]; }
const char* to_string(Broadcast v) { return kBroadcasts[static_cast<std::size_t>(v)]; }
const char* to_string(EstimateStart v) { return kEstimateStarts[static_cast<std::size_t>(v)]; }
const char* to_string(DenseProducts v) { return kDenseProducts[static_cast<std::size_t>(v)]; }
const char* to_string(Padding v) { return kPaddings[static_cast<std::size_t>(v)]; }

// Equality compares every key of the table (used or not), section by section.
namespace {
template <class S>
bool same_part(const S& a, const S& b) {
  Deck x, y;
  part<S>(x) = a, part<S>(y) = b;
  return same_section(x, y, section_of<S>());
}
}  // namespace

bool operator==(const ProblemConfig& a, const ProblemConfig& b) { return same_part(a, b); }
bool operator==(const OptimizerConfig& a, const OptimizerConfig& b) { return same_part(a, b); }
bool operator==(const RunConfig& a, const RunConfig& b) { return same_part(a, b); }
bool operator==(const WorkersConfig& a, const WorkersConfig& b) { return same_part(a, b); }

bool operator==(const Deck& a, const Deck& b) {
  if (a.path != b.path) return false;
  for (const auto& k : key_table())
    if (!k.same(a, b)) return false;
  return true;
}

namespace {
/// The byte offset of the first byte that is not part of valid UTF-8 (overlong forms, surrogates and code
/// points above U+10FFFF included) or is a control character YAML does not allow (NUL, ...; tab, line feed
/// and carriage return are allowed), or npos.
std::size_t invalid_utf8_at(const std::string& s) {
  std::size_t i = 0;
  const std::size_t n = s.size();
  while (i < n) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7F) return i;  // not printable in YAML
    if (c < 0x80) { ++i; continue; }
    if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; }
    else return i;
    if (i + len > n) return i;
    for (std::size_t k = 1; k < len; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (d & 0x3F);
    }
    const std::uint32_t least[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < least[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += len;
  }
  return std::string::npos;
}

/// A deck is YAML, which is printable Unicode: a byte that is not UTF-8 would not survive the effective deck
/// written to the history, and a NUL inside a path would cut it short for the operating system (both found by
/// tests/fuzz/fuzz_deck), so they are refused where they are.
void check_utf8(const std::string& text, const std::string& where_prefix, bool lines) {
  const std::size_t at = invalid_utf8_at(text);
  if (at == std::string::npos) return;
  std::string where = where_prefix;
  if (lines) {
    const std::size_t line = 1 + static_cast<std::size_t>(std::count(text.begin(), text.begin() + at, '\n'));
    const std::size_t bol = text.rfind('\n', at == 0 ? 0 : at - 1);
    const std::size_t col = at - (bol == std::string::npos || at == 0 ? 0 : bol + 1) + 1;
    where += ":" + std::to_string(line) + ":" + std::to_string(col);
  }
  char byte[8];
  std::snprintf(byte, sizeof byte, "0x%02X", static_cast<unsigned char>(text[at]));
  const auto b = static_cast<unsigned char>(text[at]);
  if (b < 0x20 || b == 0x7F)
    throw DeckError(where + ": control character " + byte + " (YAML allows tab, line feed and carriage return only)");
  throw DeckError(where + ": not valid UTF-8 (byte " + byte + "); a deck is YAML, which is Unicode");
}
}  // namespace

Deck parse_deck_string(const std::string& yaml, const std::string& name, const std::vector<std::string>& overrides) {
  check_utf8(yaml, name, true);
  for (const auto& o : overrides) check_utf8(o, name + ": --set " + o.substr(0, o.find('=')), false);
  return Parser(name).parse(yaml, overrides);
}

Deck parse_deck(const std::string& path, const std::vector<std::string>& overrides) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw DeckError(path + ": is a directory, not a deck file");
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw DeckError(path + ": cannot open the deck: " + std::strerror(errno));
  std::string text;
  char buf[4096];
  std::size_t got = 0;
  while ((got = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, got);
  const bool bad = std::ferror(f) != 0;
  std::fclose(f);
  if (bad) throw DeckError(path + ": cannot read the deck");
  return parse_deck_string(text, path, overrides);
}

std::string effective_config_yaml(const Deck& deck) {
  YAML::Emitter out;
  out << YAML::Comment("effective deck of " + deck.path + " (defaults and --set applied)");
  out << YAML::BeginMap;
  for (const char* s : kSections) {
    out << YAML::Key << s << YAML::Value << YAML::BeginMap;
    for (const auto& k : key_table())
      if (k.section == s && k.unused(deck).empty()) k.emit(out, deck);
    out << YAML::EndMap;
  }
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

std::string default_checkpoint_path(const std::string& output) {
  const std::string ext = ".h5";
  if (output.size() > ext.size() && output.compare(output.size() - ext.size(), ext.size(), ext) == 0)
    return output.substr(0, output.size() - ext.size()) + ".checkpoint.h5";
  return output + ".checkpoint.h5";
}

std::vector<std::string> accepted_keys() {
  std::vector<std::string> all;
  for (const auto& k : key_table()) all.push_back(k.skey());
  return all;
}

}  // namespace terse

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
#include <limits>
#include <map>
#include <sstream>
#include <utility>

namespace terse {

namespace {

// ------------------------------------------------------------------------------------------------ names

constexpr std::array<const char*, 4> kProblemKinds{{"quadratic", "rosenbrock", "logistic", "mlp"}};
constexpr std::array<const char*, 2> kNoiseCoords{{"first", "all"}};
constexpr std::array<const char*, 2> kDataFormats{{"libsvm", "fashion_mnist"}};
constexpr std::array<const char*, 13> kOptimizerKinds{{"sgd", "majority_vote", "stochastic_sign", "ef_signsgd",
                                                       "amsgrad", "amsgrad_naive", "amsgrad_ef", "cd_adam", "ef21",
                                                       "adagrad", "local_sgd", "local_adaalter", "onebit_adam"}};
constexpr std::array<const char*, 3> kLrSchedules{{"constant", "inv_sqrt", "adaptive"}};
constexpr std::array<const char*, 2> kVoteModes{{"workers", "samples"}};
constexpr std::array<const char*, 2> kAcceptRules{{"always", "descent"}};
constexpr std::array<const char*, 2> kCompressors{{"scaled_sign", "top_k"}};
constexpr std::array<const char*, 2> kBroadcasts{{"markov", "mean"}};
constexpr std::array<const char*, 2> kEstimateStarts{{"zero", "gradient"}};

constexpr std::array<const char*, 4> kSections{{"problem", "optimizer", "run", "workers"}};

// Every key of every section, in the order of docs/deck.md (the effective deck is written in this order too).
const std::vector<std::string>& section_keys(const std::string& section) {
  static const std::map<std::string, std::vector<std::string>> keys{
      {"problem",
       {"kind", "dim", "x0", "noise_std", "noise_coords", "lambda", "data", "data_format", "classes", "hidden",
        "train_images", "train_labels", "test_images", "test_labels"}},
      {"optimizer",
       {"kind", "lr", "lr_schedule", "lipschitz", "vote", "accept", "compressor", "k_ratio", "broadcast",
        "estimate_start", "beta1", "beta2", "nu", "eps", "sync_period", "b0", "warmup_steps"}},
      {"run", {"iterations", "batch", "seed", "log_every", "output", "success_probability_samples", "checkpoint"}},
      {"workers", {"per_rank"}}};
  static const std::vector<std::string> none;
  auto it = keys.find(section);
  return it == keys.end() ? none : it->second;
}

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

// ------------------------------------------------------------------------------------------------ use of keys

bool one_of(OptimizerKind k, std::initializer_list<OptimizerKind> set) {
  return std::find(set.begin(), set.end(), k) != set.end();
}

/// Why the problem section's `key` is not used by `p` (e.g. "problem.kind mlp"), "" when it is used. Only
/// p.kind and p.data_format are looked at.
std::string problem_unused(const std::string& key, const ProblemConfig& p) {
  using K = ProblemKind;
  const K k = p.kind;
  const std::string by_kind = std::string("problem.kind ") + to_string(k);
  const std::string by_format = std::string("problem.data_format ") + to_string(p.data_format);
  if (key == "kind") return "";
  if (key == "dim") return k != K::mlp ? "" : by_kind;
  if (key == "x0" || key == "noise_std") return (k == K::quadratic || k == K::rosenbrock) ? "" : by_kind;
  if (key == "noise_coords") return k == K::quadratic ? "" : by_kind;
  if (key == "lambda" || key == "data_format") return k == K::logistic ? "" : by_kind;
  if (key == "data") return k != K::logistic ? by_kind : p.data_format == DataFormat::libsvm ? "" : by_format;
  if (key == "classes") return k != K::logistic ? by_kind : p.data_format == DataFormat::fashion_mnist ? "" : by_format;
  if (key == "hidden") return k == K::mlp ? "" : by_kind;
  if (key == "train_images" || key == "train_labels") {
    if (k == K::mlp) return "";
    if (k == K::logistic) return p.data_format == DataFormat::fashion_mnist ? "" : by_format;
    return by_kind;
  }
  if (key == "test_images" || key == "test_labels") return k == K::mlp ? "" : by_kind;
  return by_kind;  // not reached for accepted keys
}

/// Why the optimizer section's `key` is not used by `o`, "" when it is used. Only o.kind, o.lr_schedule and
/// o.compressor are looked at.
std::string optimizer_unused(const std::string& key, const OptimizerConfig& o) {
  using K = OptimizerKind;
  const K k = o.kind;
  const std::string by_kind = std::string("optimizer.kind ") + to_string(k);
  if (key == "kind" || key == "lr") return "";
  if (key == "lr_schedule" || key == "vote" || key == "accept") return k == K::majority_vote ? "" : by_kind;
  if (key == "lipschitz") {
    if (k != K::majority_vote) return by_kind;
    return o.lr_schedule == LrSchedule::adaptive ? ""
                                                 : std::string("optimizer.lr_schedule ") + to_string(o.lr_schedule);
  }
  if (key == "compressor") return one_of(k, {K::cd_adam, K::ef21}) ? "" : by_kind;
  if (key == "k_ratio") {
    if (!one_of(k, {K::cd_adam, K::ef21})) return by_kind;
    return o.compressor == Compressor::top_k ? "" : std::string("optimizer.compressor ") + to_string(o.compressor);
  }
  if (key == "broadcast" || key == "estimate_start") return one_of(k, {K::cd_adam, K::ef21}) ? "" : by_kind;
  if (key == "beta1" || key == "beta2" || key == "nu")
    return one_of(k, {K::amsgrad, K::amsgrad_naive, K::amsgrad_ef, K::cd_adam, K::onebit_adam}) ? "" : by_kind;
  if (key == "eps") return one_of(k, {K::adagrad, K::local_adaalter}) ? "" : by_kind;
  if (key == "sync_period") return one_of(k, {K::local_sgd, K::local_adaalter}) ? "" : by_kind;
  if (key == "b0") return k == K::local_adaalter ? "" : by_kind;
  if (key == "warmup_steps") return one_of(k, {K::local_adaalter, K::onebit_adam}) ? "" : by_kind;
  return by_kind;
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
    parse_problem(deck.problem);
    parse_optimizer(deck.optimizer);
    parse_run(deck.run);
    parse_workers(deck.workers);
    return deck;
  }

 private:
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

  /// Refuses every given key of `section` that `unused(key)` says is not used, in the order of the docs.
  template <class Unused>
  void check_used(const std::string& section, Unused unused) const {
    for (const auto& key : section_keys(section)) {
      const Entry* e = find(section, key);
      if (!e) continue;
      const std::string why = unused(key);
      if (!why.empty()) fail_value(section + "." + key, *e, "not used by " + why);
    }
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

  // ---------------------------------------------------------------------------------------- sections

  void parse_problem(ProblemConfig& p) {
    const std::string S = "problem";
    const Entry* kind = find(S, "kind");
    if (!kind) fail_required(S, "kind", " (one of " + join(kProblemKinds) + ")");
    p.kind = read_enum<ProblemKind>("problem.kind", *kind, kProblemKinds);
    if (const Entry* e = find(S, "data_format"); e && p.kind == ProblemKind::logistic)
      p.data_format = read_enum<DataFormat>("problem.data_format", *e, kDataFormats);
    check_used(S, [&](const std::string& key) { return problem_unused(key, p); });

    using K = ProblemKind;
    if (const Entry* e = find(S, "dim")) {
      p.dim = read_int<std::int64_t>("problem.dim", *e, 1);
      if (p.kind == K::rosenbrock && *p.dim < 2)
        fail_value("problem.dim", *e, "must be >= 2 for problem.kind rosenbrock, got " + e->value.Scalar());
    } else if (p.kind == K::quadratic) {
      fail_required(S, "dim", " for problem.kind quadratic");
    } else if (p.kind == K::rosenbrock) {
      p.dim = 10;
    }
    if (p.kind == K::rosenbrock) p.x0 = 0.0;
    if (const Entry* e = find(S, "x0")) p.x0 = read_number("problem.x0", *e);
    if (const Entry* e = find(S, "noise_std")) p.noise_std = read_number_in("problem.noise_std", *e, 0, Bound::closed);
    if (const Entry* e = find(S, "noise_coords"))
      p.noise_coords = read_enum<NoiseCoords>("problem.noise_coords", *e, kNoiseCoords);
    if (const Entry* e = find(S, "lambda")) p.lambda = read_number_in("problem.lambda", *e, 0, Bound::closed);
    if (const Entry* e = find(S, "data"))
      p.data = read_path("problem.data", *e);
    else if (p.kind == K::logistic && p.data_format == DataFormat::libsvm)
      fail_required(S, "data", " when problem.data_format is libsvm");
    if (const Entry* e = find(S, "classes")) p.classes = read_classes("problem.classes", *e);
    if (const Entry* e = find(S, "hidden")) p.hidden = read_int<std::int64_t>("problem.hidden", *e, 1);
    if (const Entry* e = find(S, "train_images")) p.train_images = read_path("problem.train_images", *e);
    if (const Entry* e = find(S, "train_labels")) p.train_labels = read_path("problem.train_labels", *e);
    if (const Entry* e = find(S, "test_images")) p.test_images = read_path("problem.test_images", *e);
    if (const Entry* e = find(S, "test_labels")) p.test_labels = read_path("problem.test_labels", *e);
  }

  void parse_optimizer(OptimizerConfig& o) {
    const std::string S = "optimizer";
    using K = OptimizerKind;
    const Entry* kind = find(S, "kind");
    if (!kind) fail_required(S, "kind", " (one of " + join(kOptimizerKinds) + ")");
    o.kind = read_enum<OptimizerKind>("optimizer.kind", *kind, kOptimizerKinds);
    if (o.kind == K::ef21) o.compressor = Compressor::top_k;
    // The keys that decide whether others are used, read first when their algorithm uses them.
    if (const Entry* e = find(S, "lr_schedule"); e && optimizer_unused("lr_schedule", o).empty())
      o.lr_schedule = read_enum<LrSchedule>("optimizer.lr_schedule", *e, kLrSchedules);
    if (const Entry* e = find(S, "compressor"); e && optimizer_unused("compressor", o).empty())
      o.compressor = read_enum<Compressor>("optimizer.compressor", *e, kCompressors);
    check_used(S, [&](const std::string& key) { return optimizer_unused(key, o); });

    const Entry* lr = find(S, "lr");
    if (!lr) fail_required(S, "lr", " (a step size > 0)");
    o.lr = read_number_in("optimizer.lr", *lr, 0, Bound::open);
    if (const Entry* e = find(S, "lipschitz"))
      o.lipschitz = read_number_in("optimizer.lipschitz", *e, 0, Bound::open);
    else if (o.kind == K::majority_vote && o.lr_schedule == LrSchedule::adaptive)
      fail_required(S, "lipschitz", " when optimizer.lr_schedule is adaptive");
    if (const Entry* e = find(S, "vote")) o.vote = read_enum<VoteMode>("optimizer.vote", *e, kVoteModes);
    if (const Entry* e = find(S, "accept")) o.accept = read_enum<AcceptRule>("optimizer.accept", *e, kAcceptRules);
    if (const Entry* e = find(S, "k_ratio"))
      o.k_ratio = read_number_in("optimizer.k_ratio", *e, 0, Bound::open, 1, Bound::closed);
    if (const Entry* e = find(S, "broadcast"))
      o.broadcast = read_enum<Broadcast>("optimizer.broadcast", *e, kBroadcasts);
    if (const Entry* e = find(S, "estimate_start"))
      o.estimate_start = read_enum<EstimateStart>("optimizer.estimate_start", *e, kEstimateStarts);
    if (const Entry* e = find(S, "beta1"))
      o.beta1 = read_number_in("optimizer.beta1", *e, 0, Bound::closed, 1, Bound::open);
    if (const Entry* e = find(S, "beta2"))
      o.beta2 = read_number_in("optimizer.beta2", *e, 0, Bound::closed, 1, Bound::open);
    if (const Entry* e = find(S, "nu")) o.nu = read_number_in("optimizer.nu", *e, 0, Bound::open);
    if (const Entry* e = find(S, "eps")) o.eps = read_number_in("optimizer.eps", *e, 0, Bound::open);
    if (const Entry* e = find(S, "sync_period")) o.sync_period = read_int<std::int64_t>("optimizer.sync_period", *e, 1);
    if (const Entry* e = find(S, "b0")) o.b0 = read_number_in("optimizer.b0", *e, 0, Bound::open);
    if (const Entry* e = find(S, "warmup_steps"))
      o.warmup_steps = read_int<std::int64_t>("optimizer.warmup_steps", *e, o.kind == K::onebit_adam ? 1 : 0);
    else if (o.kind == K::onebit_adam)
      fail_required(S, "warmup_steps", " for onebit_adam (uncompressed Adam steps before the variance is frozen, >= 1)");
  }

  void parse_run(RunConfig& r) {
    const std::string S = "run";
    const Entry* it = find(S, "iterations");
    if (!it) fail_required(S, "iterations", " (the number of updates, >= 1)");
    r.iterations = read_int<std::int64_t>("run.iterations", *it, 1);
    if (const Entry* e = find(S, "batch")) {
      if (e->value.IsScalar() && e->value.Scalar() == "full") {
        r.batch_full = true;
        r.batch = 0;
      } else {
        if (!e->value.IsScalar() || is_quoted_string(e->value) || !is_decimal_integer(e->value.Scalar()))
          fail_value("run.batch", *e, "expected an integer >= 1 or 'full', got " + node_kind(e->value));
        r.batch = read_int<std::int64_t>("run.batch", *e, 1);
      }
    }
    if (const Entry* e = find(S, "seed")) r.seed = read_int<std::uint64_t>("run.seed", *e, 0);
    r.log_every = std::max<std::int64_t>(1, r.iterations / 100);
    if (const Entry* e = find(S, "log_every")) r.log_every = read_int<std::int64_t>("run.log_every", *e, 1);
    if (const Entry* e = find(S, "output")) r.output = read_path("run.output", *e);
    if (const Entry* e = find(S, "success_probability_samples"))
      r.success_probability_samples = read_int<std::int64_t>("run.success_probability_samples", *e, 0);
    r.checkpoint_path = default_checkpoint_path(r.output);
    if (const Entry* e = find(S, "checkpoint")) {
      const YAML::Node& n = e->value;
      if (!n.IsMap())
        fail_value("run.checkpoint", *e, "expected a mapping {path: FILE.h5, every: N}, got " + node_kind(n));
      bool has_every = false;
      for (auto it = n.begin(); it != n.end(); ++it) {
        const std::string sub = it->first.IsScalar() ? it->first.Scalar() : std::string("?");
        const int line = it->first.Mark().is_null() || e->line == 0 ? e->line : it->first.Mark().line + 1;
        const Entry item{it->second, line, e->set_text};
        if (sub == "path") {
          r.checkpoint_path = read_path("run.checkpoint.path", item);
        } else if (sub == "every") {
          r.checkpoint_every = read_int<std::int64_t>("run.checkpoint.every", item, 1);
          has_every = true;
        } else {
          fail_value("run.checkpoint." + sub, item, "unknown key (run.checkpoint has path and every)");
        }
      }
      if (!has_every)
        fail_value("run.checkpoint", *e, "every: required (write a checkpoint every N updates, N >= 1)");
    }
    if (r.checkpoint_path == r.output)
      fail("run.checkpoint.path: the checkpoint and the history (run.output) are the same file, " + r.output);
  }

  void parse_workers(WorkersConfig& w) {
    if (const Entry* e = find("workers", "per_rank")) w.per_rank = read_int<std::int64_t>("workers.per_rank", *e, 1);
  }
};

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

bool operator==(const ProblemConfig& a, const ProblemConfig& b) {
  return a.kind == b.kind && a.dim == b.dim && a.x0 == b.x0 && a.noise_std == b.noise_std &&
         a.noise_coords == b.noise_coords && a.lambda == b.lambda && a.data == b.data &&
         a.data_format == b.data_format && a.classes == b.classes && a.hidden == b.hidden &&
         a.train_images == b.train_images && a.train_labels == b.train_labels && a.test_images == b.test_images &&
         a.test_labels == b.test_labels;
}

bool operator==(const OptimizerConfig& a, const OptimizerConfig& b) {
  return a.kind == b.kind && a.lr == b.lr && a.lr_schedule == b.lr_schedule && a.lipschitz == b.lipschitz &&
         a.vote == b.vote && a.accept == b.accept && a.compressor == b.compressor && a.k_ratio == b.k_ratio &&
         a.broadcast == b.broadcast && a.estimate_start == b.estimate_start && a.beta1 == b.beta1 && a.beta2 == b.beta2 && a.nu == b.nu && a.eps == b.eps && a.sync_period == b.sync_period &&
         a.b0 == b.b0 && a.warmup_steps == b.warmup_steps;
}

bool operator==(const RunConfig& a, const RunConfig& b) {
  return a.iterations == b.iterations && a.batch_full == b.batch_full && a.batch == b.batch && a.seed == b.seed &&
         a.log_every == b.log_every && a.output == b.output && a.checkpoint_path == b.checkpoint_path &&
         a.checkpoint_every == b.checkpoint_every && a.success_probability_samples == b.success_probability_samples;
}

bool operator==(const WorkersConfig& a, const WorkersConfig& b) { return a.per_rank == b.per_rank; }

bool operator==(const Deck& a, const Deck& b) {
  return a.path == b.path && a.problem == b.problem && a.optimizer == b.optimizer && a.run == b.run &&
         a.workers == b.workers;
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

namespace {

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

void emit_problem_key(YAML::Emitter& out, const std::string& key, const ProblemConfig& p) {
  if (key == "kind") return emit_word(out, key, to_string(p.kind));
  if (key == "dim") return p.dim ? emit_integer(out, key, *p.dim) : void();
  if (key == "x0") return emit_number(out, key, p.x0);
  if (key == "noise_std") return emit_number(out, key, p.noise_std);
  if (key == "noise_coords") return emit_word(out, key, to_string(p.noise_coords));
  if (key == "lambda") return emit_number(out, key, p.lambda);
  if (key == "data") return p.data ? emit_path(out, key, *p.data) : void();
  if (key == "data_format") return emit_word(out, key, to_string(p.data_format));
  if (key == "classes") {
    out << YAML::Key << key << YAML::Value << YAML::Flow << YAML::BeginSeq << std::to_string(p.classes[0])
        << std::to_string(p.classes[1]) << YAML::EndSeq;
    return;
  }
  if (key == "hidden") return emit_integer(out, key, p.hidden);
  if (key == "train_images") return emit_path(out, key, p.train_images);
  if (key == "train_labels") return emit_path(out, key, p.train_labels);
  if (key == "test_images") return emit_path(out, key, p.test_images);
  if (key == "test_labels") return emit_path(out, key, p.test_labels);
}

void emit_optimizer_key(YAML::Emitter& out, const std::string& key, const OptimizerConfig& o) {
  if (key == "kind") return emit_word(out, key, to_string(o.kind));
  if (key == "lr") return emit_number(out, key, o.lr);
  if (key == "lr_schedule") return emit_word(out, key, to_string(o.lr_schedule));
  if (key == "lipschitz") return o.lipschitz ? emit_number(out, key, *o.lipschitz) : void();
  if (key == "vote") return emit_word(out, key, to_string(o.vote));
  if (key == "accept") return emit_word(out, key, to_string(o.accept));
  if (key == "compressor") return emit_word(out, key, to_string(o.compressor));
  if (key == "k_ratio") return emit_number(out, key, o.k_ratio);
  if (key == "broadcast") return emit_word(out, key, to_string(o.broadcast));
  if (key == "estimate_start") return emit_word(out, key, to_string(o.estimate_start));
  if (key == "beta1") return emit_number(out, key, o.beta1);
  if (key == "beta2") return emit_number(out, key, o.beta2);
  if (key == "nu") return emit_number(out, key, o.nu);
  if (key == "eps") return emit_number(out, key, o.eps);
  if (key == "sync_period") return emit_integer(out, key, o.sync_period);
  if (key == "b0") return emit_number(out, key, o.b0);
  if (key == "warmup_steps") return emit_integer(out, key, o.warmup_steps);
}

}  // namespace

std::string effective_config_yaml(const Deck& deck) {
  YAML::Emitter out;
  out << YAML::Comment("effective deck of " + deck.path + " (defaults and --set applied)");
  out << YAML::BeginMap;

  out << YAML::Key << "problem" << YAML::Value << YAML::BeginMap;
  for (const auto& key : section_keys("problem"))
    if (problem_unused(key, deck.problem).empty()) emit_problem_key(out, key, deck.problem);
  out << YAML::EndMap;

  out << YAML::Key << "optimizer" << YAML::Value << YAML::BeginMap;
  for (const auto& key : section_keys("optimizer"))
    if (optimizer_unused(key, deck.optimizer).empty()) emit_optimizer_key(out, key, deck.optimizer);
  out << YAML::EndMap;

  const RunConfig& r = deck.run;
  out << YAML::Key << "run" << YAML::Value << YAML::BeginMap;
  emit_integer(out, "iterations", r.iterations);
  if (r.batch_full)
    emit_word(out, "batch", "full");
  else
    emit_integer(out, "batch", r.batch);
  emit_integer(out, "seed", r.seed);
  emit_integer(out, "log_every", r.log_every);
  emit_path(out, "output", r.output);
  if (r.success_probability_samples > 0) emit_integer(out, "success_probability_samples", r.success_probability_samples);
  if (r.checkpoint_every > 0) {
    out << YAML::Key << "checkpoint" << YAML::Value << YAML::Flow << YAML::BeginMap;
    emit_path(out, "path", r.checkpoint_path);
    emit_integer(out, "every", r.checkpoint_every);
    out << YAML::EndMap;
  }
  out << YAML::EndMap;

  out << YAML::Key << "workers" << YAML::Value << YAML::BeginMap;
  emit_integer(out, "per_rank", deck.workers.per_rank);
  out << YAML::EndMap;

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
  for (const char* s : kSections)
    for (const auto& k : section_keys(s)) all.push_back(std::string(s) + "." + k);
  return all;
}

}  // namespace terse

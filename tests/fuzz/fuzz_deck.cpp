// fuzz_deck.cpp: libFuzzer harness of the deck parser (terse::parse_deck_string).
//
// Input: a YAML deck; lines starting with "#set " after it are --set overrides ("#set run.batch=4"), so the
// override path is fuzzed too. A bad deck must be refused with terse::UserError (DeckError); anything else
// escaping, a crash or a sanitizer report is a bug. Property checked on every accepted deck: the effective
// deck (effective_config_yaml: defaults applied) parses again to the same deck.
#include <terse_Deck.hpp>
#include <terse_Error.hpp>

#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> overrides;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);)
    if (line.rfind("#set ", 0) == 0) overrides.push_back(line.substr(5));
  terse::Deck deck;
  try {
    deck = terse::parse_deck_string(text, "fuzz.yaml", overrides);
  } catch (const terse::UserError&) {
    return 0;  // refused with a message: the expected outcome for most inputs
  }
  const std::string effective = terse::effective_config_yaml(deck);
  terse::Deck again;
  try {
    again = terse::parse_deck_string(effective, "fuzz.yaml");
  } catch (const terse::UserError& e) {
    std::fprintf(stderr, "the effective deck of an accepted deck is refused: %s\n%s\n", e.what(), effective.c_str());
    std::abort();
  }
  if (again != deck) {
    std::fprintf(stderr, "the effective deck parses to another deck:\n%s\n", effective.c_str());
    std::abort();
  }
  return 0;
}

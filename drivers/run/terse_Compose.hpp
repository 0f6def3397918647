#pragma once
// terse_Compose.hpp: the deck onto the spec, in exactly one place. compose() is the composition table: each
// `optimizer.kind` of the deck as the pieces of terse::optim::Spec (terse_Spec.hpp) with the deck's
// hyper-parameters; layout_of() the run's Layout (d, workers.per_rank, run.seed, run.exchange_chunk). `terse run`
// builds its Method from them, and so can a user who has a deck (target terse::deck):
//
//   const terse::Deck deck = terse::parse_deck("my.yaml");
//   terse::optim::Method<> method(MPI_COMM_WORLD, terse::compose(deck.optimizer), terse::layout_of(deck, d));
//
// A new method is a new row of compose() (and its deck keys in the key table of terse_Deck.cpp).

#include "terse_Deck.hpp"
#include "terse_Spec.hpp"

#include <cstdint>

namespace terse {

/// The pieces and hyper-parameters of the deck's algorithm (see the table in the definition).
optim::Spec compose(const OptimizerConfig& optimizer);

/// Where the deck's method runs for a gradient of length d.
optim::Layout layout_of(const Deck& deck, std::uint64_t d);

}  // namespace terse

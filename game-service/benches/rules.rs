//! One move on the rules: the cost of `Game::make_move` and of building a tally.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use game_service::rules::Game;

fn moves(c: &mut Criterion) {
    let game = Game::new("hangman").unwrap();
    c.bench_function("make_move (good guess)", |b| {
        b.iter_batched_ref(
            || game.clone(),
            |game| game.make_move(black_box("a")),
            BatchSize::SmallInput,
        )
    });
    c.bench_function("make_move (bad guess)", |b| {
        b.iter_batched_ref(
            || game.clone(),
            |game| game.make_move(black_box("z")),
            BatchSize::SmallInput,
        )
    });
    let mut played = game.clone();
    for guess in ["a", "z", "n"] {
        played.make_move(guess).unwrap();
    }
    c.bench_function("tally", |b| b.iter(|| black_box(&played).tally()));
}

criterion_group!(benches, moves);
criterion_main!(benches);

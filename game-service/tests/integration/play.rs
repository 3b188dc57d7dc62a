//! `Play`, many moves over one stream, as a client sees it: a real server on port 0 and the
//! generated client; each reply answers one request by its id, refusals are replies, and the
//! stream ends as the contract says (half-close, garbage, shutdown).

use std::collections::HashMap;
use std::time::Duration;

use game_service::testing::Client;
use hangman_proto::v1::{
    GameState, MakeMoveRequest, PlayRequest, PlayResponse, Tally, play_response::Outcome,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Streaming};

use crate::support::{Store, get, new_game, server};

/// A stream the test writes to move by move, and the replies.
struct Stream {
    moves: mpsc::Sender<PlayRequest>,
    replies: Streaming<PlayResponse>,
}

async fn open(client: &mut Client) -> Stream {
    let (moves, outgoing) = mpsc::channel(1024);
    let replies = client
        .play(ReceiverStream::new(outgoing))
        .await
        .expect("the stream opens")
        .into_inner();
    Stream { moves, replies }
}

fn request(request_id: u64, game_id: &str, guess: &str) -> PlayRequest {
    PlayRequest {
        request_id,
        game_id: game_id.to_owned(),
        guess: guess.to_owned(),
    }
}

impl Stream {
    async fn send(&self, request_id: u64, game_id: &str, guess: &str) {
        let request = request(request_id, game_id, guess);
        self.moves.send(request).await.expect("the stream is open");
    }

    /// The next reply, within ten seconds.
    async fn reply(&mut self) -> PlayResponse {
        tokio::time::timeout(Duration::from_secs(10), self.replies.message())
            .await
            .expect("a reply in time")
            .expect("the stream goes on")
            .expect("the stream has not ended")
    }

    /// Plays one move and waits for its reply.
    async fn play(&mut self, request_id: u64, game_id: &str, guess: &str) -> Outcome {
        self.send(request_id, game_id, guess).await;
        let reply = self.reply().await;
        assert_eq!(reply.request_id, request_id);
        assert_eq!(reply.game_id, game_id);
        reply.outcome.expect("a reply has an outcome")
    }
}

fn tally(outcome: Outcome) -> Tally {
    match outcome {
        Outcome::Tally(tally) => tally,
        Outcome::Error(error) => panic!("the move failed: {error:?}"),
    }
}

#[tokio::test]
async fn a_whole_game_is_played_over_one_stream() {
    let server = server(Store::Memory, &["--test-mode"]).await;
    let mut client = server.client().await;
    let game = new_game(&mut client, "otter").await;
    let mut stream = open(&mut client).await;
    let played = [
        ("t", GameState::GoodGuess),
        ("z", GameState::BadGuess),
        ("t", GameState::AlreadyUsed),
        ("o", GameState::GoodGuess),
        ("e", GameState::GoodGuess),
        ("R", GameState::Won),
    ];
    for (id, (guess, state)) in (1..).zip(played) {
        let tally = tally(stream.play(id, &game, guess).await);
        assert_eq!(tally.game_state(), state, "{guess}");
        assert_eq!(tally.version, id);
    }
    let last = get(&mut client, &game).await.unwrap();
    assert_eq!(last.word.as_deref(), Some("otter"));
    assert_eq!(last.turns_left, 6);
    server.stop().await;
}

#[tokio::test]
async fn a_refused_move_is_a_reply_with_the_code_and_field_of_make_move_and_the_stream_goes_on() {
    let server = server(Store::Memory, &["--test-mode"]).await;
    let mut client = server.client().await;
    let game = new_game(&mut client, "otter").await;
    let mut stream = open(&mut client).await;
    let refusals = [
        ("no-such-game", "e", Code::NotFound, ""),
        (game.as_str(), "xy", Code::InvalidArgument, "guess"),
        ("", "e", Code::InvalidArgument, "game_id"),
    ];
    for (id, (game_id, guess, code, field)) in (1..).zip(refusals) {
        let Outcome::Error(error) = stream.play(id, game_id, guess).await else {
            panic!("{game_id:?} {guess:?} is refused");
        };
        assert_eq!(error.code, code as i32, "{error:?}");
        assert_eq!(error.field, field, "{error:?}");
        assert!(!error.message.is_empty());
    }
    // Nothing was played on the game, and the stream still plays.
    let tally = tally(stream.play(4, &game, "e").await);
    assert_eq!(
        (tally.game_state(), tally.version),
        (GameState::GoodGuess, 1)
    );
    server.stop().await;
}

#[tokio::test]
async fn many_moves_in_flight_on_several_games_are_each_answered_by_id_in_each_games_order() {
    // A limit of 4 in flight, far under the moves sent at once: the server reads on as moves
    // are answered, and none is refused for it.
    let server = server(
        Store::Memory,
        &["--test-mode", "--max-moves-in-flight-per-stream", "4"],
    )
    .await;
    let mut client = server.client().await;
    let mut games = Vec::new();
    for _ in 0..8 {
        games.push(new_game(&mut client, "otter").await);
    }
    let mut stream = open(&mut client).await;
    // Every game gets the same five guesses, interleaved with the other games' moves; each one
    // changes the tally, so a game's k-th move, applied in order, gives version k.
    let guesses = ["o", "t", "x", "e", "r"];
    let mut sent = HashMap::new();
    let mut id = 1000;
    for (k, guess) in guesses.iter().enumerate() {
        for game in &games {
            id += 7;
            stream.send(id, game, guess).await;
            sent.insert(id, (game.clone(), k as u64 + 1));
        }
    }
    for _ in 0..sent.len() {
        let reply = stream.reply().await;
        let (game, version) = sent
            .remove(&reply.request_id)
            .unwrap_or_else(|| panic!("one reply per request: {reply:?}"));
        assert_eq!(reply.game_id, game);
        let tally = tally(reply.outcome.unwrap());
        assert_eq!(
            tally.version, version,
            "the moves of {game} in the order sent"
        );
    }
    for game in &games {
        let tally = get(&mut client, game).await.unwrap();
        assert_eq!((tally.game_state(), tally.version), (GameState::Won, 5));
    }
    server.stop().await;
}

#[tokio::test]
async fn a_request_id_reused_while_pending_is_refused_and_the_first_request_answered() {
    let server = server(Store::Memory, &["--test-mode"]).await;
    let mut client = server.client().await;
    let game = new_game(&mut client, "otter").await;
    // Sent together (one write), so the second arrives while the first is pending.
    let requests = [request(7, &game, "o"), request(7, &game, "t")];
    let mut replies = client
        .play(futures::stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let mut outcomes = Vec::new();
    while let Some(reply) = replies.message().await.expect("the stream goes on") {
        assert_eq!(reply.request_id, 7);
        outcomes.push(reply.outcome.unwrap());
    }
    let [Outcome::Error(refused), Outcome::Tally(played)] = &outcomes[..] else {
        panic!("a refusal then the first move's tally: {outcomes:?}");
    };
    assert_eq!(
        (refused.code, refused.field.as_str()),
        (Code::InvalidArgument as i32, "request_id")
    );
    assert_eq!(played.used, ["o"], "the duplicate was not played");
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_half_closes_gets_every_pending_reply_then_the_end_of_the_stream() {
    let server = server(Store::Memory, &["--test-mode"]).await;
    let mut client = server.client().await;
    let game = new_game(&mut client, "abcdefghijklmnopqrstuvwxyz").await;
    let requests: Vec<_> = (b'a'..=b'z')
        .map(|letter| request(letter.into(), &game, &char::from(letter).to_string()))
        .collect();
    // The request stream ends after its last move: the client's half-close.
    let mut replies = client
        .play(futures::stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let mut answered = Vec::new();
    while let Some(reply) = replies.message().await.expect("the stream ends cleanly") {
        answered.push(reply.request_id);
    }
    assert_eq!(
        answered,
        (u64::from(b'a')..=u64::from(b'z')).collect::<Vec<_>>()
    );
    assert_eq!(
        get(&mut client, &game).await.unwrap().game_state(),
        GameState::Won
    );
    server.stop().await;
}

#[tokio::test]
async fn a_stream_of_other_messages_ends_with_invalid_argument_and_the_server_serves_on() {
    let server = server(Store::Memory, &["--test-mode"]).await;
    let mut client = server.client().await;
    let game = new_game(&mut client, "otter").await;
    // MakeMoveRequest's field 1 is a string where PlayRequest's is a number: not a PlayRequest.
    let mut raw = tonic::client::Grpc::new(crate::support::channel(&server).await);
    raw.ready().await.unwrap();
    let wrong = MakeMoveRequest {
        game_id: game.clone(),
        guess: "o".into(),
    };
    let answer = raw
        .streaming::<_, _, PlayResponse, _>(
            tonic::Request::new(futures::stream::iter([wrong])),
            tonic::codegen::http::uri::PathAndQuery::from_static("/hangman.v1.HangmanService/Play"),
            tonic_prost::ProstCodec::default(),
        )
        .await;
    let status = match answer {
        Err(status) => status,
        Ok(replies) => replies.into_inner().message().await.unwrap_err(),
    };
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("not a PlayRequest"), "{status:?}");
    // Nothing was played, and a good stream plays.
    let mut stream = open(&mut client).await;
    let tally = tally(stream.play(1, &game, "o").await);
    assert_eq!(tally.used, ["o"]);
    server.stop().await;
}

#[tokio::test]
async fn a_shutdown_ends_an_open_stream_with_unavailable() {
    let server = server(Store::Memory, &["--test-mode"]).await;
    let mut client = server.client().await;
    let game = new_game(&mut client, "otter").await;
    let mut stream = open(&mut client).await;
    tally(stream.play(1, &game, "o").await);
    let stopping = tokio::spawn(server.stop());
    let end = tokio::time::timeout(Duration::from_secs(10), stream.replies.message())
        .await
        .expect("the stream ends before the shutdown grace runs out");
    let status = end.expect_err("the stream ends with an error, not cleanly");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    stopping.await.unwrap();
}

#[tokio::test]
async fn a_shutdown_answers_every_move_read_so_a_move_without_a_reply_was_not_played() {
    // Games in Redis, so that the game outlives the replica stopped under the stream.
    let owner = server(Store::Redis, &["--test-mode"]).await;
    let stopped = owner.replica(&[]).await;
    let mut client = stopped.client().await;
    let game = new_game(&mut client, "abcdefghijklmnopqrstuvwxyz").await;
    let mut stream = open(&mut client).await;
    // Every letter on the one game: they are played one after the other, so once the first
    // is answered the others are in flight or still to be read.
    for letter in 'a'..='z' {
        stream.send(letter.into(), &game, &letter.to_string()).await;
    }
    stream.reply().await;
    let stopping = tokio::spawn(stopped.stop());
    let mut answered = 1;
    let end = loop {
        match stream.replies.message().await {
            Ok(Some(_)) => answered += 1,
            Ok(None) => panic!("the stream ends with UNAVAILABLE, not cleanly"),
            Err(status) => break status,
        }
    };
    assert_eq!(end.code(), Code::Unavailable, "{end:?}");
    stopping.await.unwrap();
    let played = get(&mut owner.client().await, &game).await.unwrap().version;
    assert_eq!(played, answered, "the moves played are the moves answered");
    owner.stop().await;
}

//! The gateway's moves on `Play` streams, against a game service of the test's own (a real
//! tonic server whose `Play` answers as each test needs): one stream per connection, a move's
//! deadline, a stream cut with moves pending, and a game service without `Play`.
//! (Every other test of this crate plays its moves through the real game service's stream.)

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::Stream;
use hangman_proto::v1::hangman_service_server::{HangmanService, HangmanServiceServer};
use hangman_proto::v1::{
    CreateGameRequest, CreateGameResponse, EndGameRequest, EndGameResponse, GameState,
    GetGameRequest, GetGameResponse, MakeMoveRequest, MakeMoveResponse, PlayRequest, PlayResponse,
    Tally, UpdatePresenceRequest, UpdatePresenceResponse, WatchGameRequest, WatchGameResponse,
    play_response::Outcome,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};
use ws_gateway::upstream::{TraceContext, Upstream, UpstreamConfig, UpstreamError};

/// Guesses the fake game service treats apart.
const SLOW: &str = "s"; // answered after a second
const HELD: &str = "h"; // never answered

/// A game service that plays any guess on any game: the tally lists the guess alone. It
/// counts the `Play` streams opened, the moves they carried and the `MakeMove` calls.
#[derive(Clone, Default)]
struct Fake {
    without_play: bool,
    streams: Arc<AtomicUsize>,
    streamed_moves: Arc<AtomicUsize>,
    unary_moves: Arc<AtomicUsize>,
}

fn tally_of(guess: &str) -> Tally {
    Tally {
        game_state: GameState::BadGuess as i32,
        turns_left: 6,
        letters: vec!["_".into()],
        used: vec![guess.to_owned()],
        word: None,
        version: 1,
    }
}

#[tonic::async_trait]
impl HangmanService for Fake {
    async fn make_move(
        &self,
        request: Request<MakeMoveRequest>,
    ) -> Result<Response<MakeMoveResponse>, Status> {
        self.unary_moves.fetch_add(1, Ordering::Relaxed);
        let MakeMoveRequest { game_id, guess } = request.into_inner();
        let tally = Some(tally_of(&guess));
        Ok(Response::new(MakeMoveResponse { game_id, tally }))
    }

    type PlayStream = ReceiverStream<Result<PlayResponse, Status>>;

    async fn play(
        &self,
        request: Request<Streaming<PlayRequest>>,
    ) -> Result<Response<Self::PlayStream>, Status> {
        self.streams.fetch_add(1, Ordering::Relaxed);
        if self.without_play {
            return Err(Status::unimplemented("an older game service"));
        }
        let mut requests = request.into_inner();
        let (replies, stream) = mpsc::channel(1024);
        let moves = Arc::clone(&self.streamed_moves);
        tokio::spawn(async move {
            while let Ok(Some(request)) = requests.message().await {
                moves.fetch_add(1, Ordering::Relaxed);
                let replies = replies.clone();
                tokio::spawn(async move {
                    match request.guess.as_str() {
                        HELD => std::future::pending().await,
                        SLOW => tokio::time::sleep(Duration::from_secs(1)).await,
                        _ => {}
                    }
                    let reply = PlayResponse {
                        request_id: request.request_id,
                        outcome: Some(Outcome::Tally(tally_of(&request.guess))),
                        game_id: request.game_id,
                    };
                    let _ = replies.send(Ok(reply)).await;
                });
            }
        });
        Ok(Response::new(ReceiverStream::new(stream)))
    }

    async fn create_game(
        &self,
        _: Request<CreateGameRequest>,
    ) -> Result<Response<CreateGameResponse>, Status> {
        Err(Status::unimplemented("not in this fake"))
    }

    async fn get_game(
        &self,
        _: Request<GetGameRequest>,
    ) -> Result<Response<GetGameResponse>, Status> {
        Err(Status::unimplemented("not in this fake"))
    }

    type WatchGameStream =
        Pin<Box<dyn Stream<Item = Result<WatchGameResponse, Status>> + Send + 'static>>;

    async fn watch_game(
        &self,
        _: Request<WatchGameRequest>,
    ) -> Result<Response<Self::WatchGameStream>, Status> {
        Err(Status::unimplemented("not in this fake"))
    }

    async fn end_game(
        &self,
        _: Request<EndGameRequest>,
    ) -> Result<Response<EndGameResponse>, Status> {
        Err(Status::unimplemented("not in this fake"))
    }

    async fn update_presence(
        &self,
        _: Request<UpdatePresenceRequest>,
    ) -> Result<Response<UpdatePresenceResponse>, Status> {
        Err(Status::unimplemented("not in this fake"))
    }
}

/// Serves `fake` on a port of its own; its address.
async fn serve(fake: Fake) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(HangmanServiceServer::new(fake))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    addr
}

/// The gateway's client of the game service at `addr`, over `connections` connections.
fn upstream(addr: SocketAddr, connections: usize, request_timeout: Duration) -> Upstream {
    Upstream::new(&UpstreamConfig {
        url: format!("http://{addr}"),
        connect_timeout: Duration::from_secs(2),
        request_timeout,
        keep_alive: Duration::from_secs(30),
        connections,
        resolve_interval: Duration::from_secs(30),
    })
    .unwrap()
}

/// Plays `guess`: the letters used, as the answer's tally has them.
async fn play(upstream: &Upstream, guess: &str) -> Result<Vec<String>, UpstreamError> {
    let tally = upstream
        .make_move(&TraceContext::new(), "game", guess)
        .await?;
    Ok(tally.used().map(String::from).collect())
}

#[tokio::test]
async fn moves_go_on_one_stream_per_connection_each_answered_with_its_own_tally() {
    let fake = Fake::default();
    let upstream = upstream(serve(fake.clone()).await, 2, Duration::from_secs(5));
    let guesses: Vec<String> = ('a'..='z')
        .map(String::from)
        .filter(|guess| guess != SLOW && guess != HELD)
        .collect();
    let moves = guesses.iter().map(|guess| play(&upstream, guess));
    let tallies = futures::future::join_all(moves).await;
    for (guess, tally) in guesses.iter().zip(tallies) {
        assert_eq!(tally.unwrap(), std::slice::from_ref(guess));
    }
    assert_eq!(
        fake.streams.load(Ordering::Relaxed),
        2,
        "one stream per connection"
    );
    assert_eq!(fake.streamed_moves.load(Ordering::Relaxed), guesses.len());
    assert_eq!(fake.unary_moves.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_move_not_answered_by_its_deadline_fails_unavailable_and_its_late_reply_is_dropped() {
    let fake = Fake::default();
    let timeout = Duration::from_millis(300);
    let upstream = upstream(serve(fake.clone()).await, 1, timeout);
    let started = Instant::now();
    let late = play(&upstream, SLOW).await;
    assert!(
        matches!(late, Err(UpstreamError::Unavailable(_))),
        "{late:?}"
    );
    assert_eq!(late.unwrap_err().reason(), "unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "it failed at its deadline"
    );
    // The stream goes on; once the late reply has come (and been dropped), every move still
    // gets its own answer.
    assert_eq!(play(&upstream, "a").await.unwrap(), ["a"]);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(play(&upstream, "b").await.unwrap(), ["b"]);
    assert_eq!(fake.streams.load(Ordering::Relaxed), 1);
}

/// A TCP proxy to `target` whose connections [`Proxy::cut`] drops, as a killed game service
/// or a broken network would: the listener stays, so new connections go through.
struct Proxy {
    addr: SocketAddr,
    connections: mpsc::UnboundedReceiver<JoinHandle<()>>,
}

impl Proxy {
    async fn to(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (opened, connections) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let _ = opened.send(tokio::spawn(async move {
                    let mut server = TcpStream::connect(target).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }));
            }
        });
        Proxy { addr, connections }
    }

    fn cut(&mut self) {
        while let Ok(connection) = self.connections.try_recv() {
            connection.abort();
        }
    }
}

#[tokio::test]
async fn moves_pending_on_a_cut_stream_fail_unavailable_at_once_and_the_next_move_opens_another() {
    let fake = Fake::default();
    let mut proxy = Proxy::to(serve(fake.clone()).await).await;
    let timeout = Duration::from_secs(10);
    let upstream = upstream(proxy.addr, 1, timeout);
    let pending: Vec<_> = (0..5)
        .map(|_| {
            let upstream = upstream.clone();
            tokio::spawn(async move { play(&upstream, HELD).await })
        })
        .collect();
    while fake.streamed_moves.load(Ordering::Relaxed) < 5 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let cut = Instant::now();
    proxy.cut();
    for move_ in pending {
        let failed = move_.await.unwrap();
        assert!(
            matches!(failed, Err(UpstreamError::Unavailable(_))),
            "{failed:?}"
        );
    }
    assert!(
        cut.elapsed() < timeout / 2,
        "they failed with the stream, not at their deadline"
    );
    // None was sent again, and the next move plays on a new stream (a new connection).
    assert_eq!(play(&upstream, "a").await.unwrap(), ["a"]);
    assert_eq!(fake.streams.load(Ordering::Relaxed), 2);
    assert_eq!(fake.streamed_moves.load(Ordering::Relaxed), 6);
}

#[tokio::test]
async fn a_game_service_without_play_gets_make_move_calls_and_is_not_asked_again_at_once() {
    let fake = Fake {
        without_play: true,
        ..Fake::default()
    };
    let upstream = upstream(serve(fake.clone()).await, 1, Duration::from_secs(5));
    for guess in ["a", "b", "c"] {
        assert_eq!(play(&upstream, guess).await.unwrap(), [guess]);
    }
    assert_eq!(fake.streams.load(Ordering::Relaxed), 1, "asked once");
    assert_eq!(fake.unary_moves.load(Ordering::Relaxed), 3);
}

//! The long-poll transport over real HTTP, after Phoenix's `longpoll_socket_test`: the echo
//! app (tests/common) on port 0, requests as the npm client's `LongPoll` makes them.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Server, config, serve, serve_at, serve_on};
use phoenix_channels::longpoll::{LongPollConfig, SigningKey};
use phoenix_channels::test_client::PATIENCE;
use phoenix_channels::transport::TransportConfig;
use serde_json::{Value, json};

/// A long-poll client, as the npm client's `LongPoll` speaks: a GET opens the session, GETs
/// with its token poll, POSTs with it send ndjson batches. It keeps the token of every poll's
/// answer, as the npm client does (tokens expire; each answer brings a new one).
struct Session {
    http: reqwest::Client,
    url: String,
    token: String,
    latest: std::sync::Mutex<Option<String>>,
}

/// An answer: its HTTP status and its JSON body (`Null` when the body is not JSON).
async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

impl Session {
    /// Opens a session at `{mount}/longpoll` of `base` with `query` (the socket's params).
    async fn open(base: &str, query: &str) -> Session {
        let (status, body) = try_open(base, query).await;
        assert_eq!((status, &body["status"]), (200, &json!(410)), "{body}");
        Session {
            http: reqwest::Client::new(),
            url: format!("{base}/longpoll"),
            token: body["token"].as_str().expect("a token").to_owned(),
            latest: Default::default(),
        }
    }

    /// The same session, reached through another server (a replica).
    fn via(&self, base: &str) -> Session {
        Session {
            http: self.http.clone(),
            url: format!("{base}/longpoll"),
            token: self.current(),
            latest: Default::default(),
        }
    }

    /// The token of the latest answer (the session's first one, before any poll).
    fn current(&self) -> String {
        let latest = self.latest.lock().unwrap();
        latest.clone().unwrap_or_else(|| self.token.clone())
    }

    async fn post(&self, body: &str) -> (u16, Value) {
        let request = self
            .http
            .post(format!("{}?token={}", self.url, self.current()))
            .header("content-type", "application/x-ndjson")
            .body(body.to_owned());
        answer(request.send().await.unwrap()).await
    }

    /// Sends messages as one batch, and expects them taken.
    async fn send(&self, messages: &[Value]) {
        let lines: Vec<String> = messages.iter().map(Value::to_string).collect();
        let (status, body) = self.post(&lines.join("\n")).await;
        assert_eq!((status, body), (200, json!({"status": 200})));
    }

    async fn poll(&self) -> Value {
        let request = self
            .http
            .get(format!("{}?token={}", self.url, self.current()));
        let body = answer(request.send().await.unwrap()).await.1;
        if matches!(body["status"].as_u64(), Some(200 | 204)) {
            *self.latest.lock().unwrap() = body["token"].as_str().map(str::to_owned);
        }
        body
    }

    /// Polls until `n` messages came, and gives them decoded.
    async fn receive(&self, n: usize) -> Vec<Value> {
        let mut received = Vec::new();
        tokio::time::timeout(PATIENCE, async {
            while received.len() < n {
                let body = self.poll().await;
                assert!(matches!(body["status"].as_u64(), Some(200 | 204)), "{body}");
                for message in body["messages"].as_array().unwrap() {
                    received.push(serde_json::from_str(message.as_str().unwrap()).unwrap());
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{n} messages within the patience; got {received:?}"));
        received
    }

    /// Joins `echo:a` and checks that the channel echoes: the session works.
    async fn assert_echoes(&self, join_ref: &str) {
        self.send(&[
            json!([join_ref, join_ref, "echo:a", "phx_join", {}]),
            json!([join_ref, "e", "echo:a", "echo", {"n": 1}]),
        ])
        .await;
        assert_eq!(
            self.receive(2).await,
            [
                json!([join_ref, join_ref, "echo:a", "phx_reply", {"status": "ok", "response": {"topic": "echo:a"}}]),
                json!([join_ref, "e", "echo:a", "phx_reply", {"status": "ok", "response": {"n": 1}}]),
            ]
        );
    }

    /// The channel `assert_echoes` joined still answers.
    async fn assert_still_echoes(&self) {
        self.send(&[json!(["1", "e2", "echo:a", "echo", 2])]).await;
        assert_eq!(self.receive(1).await[0][4]["response"], 2);
    }
}

/// Asserts that a poll's answer is that of a GET which resumed nothing: as in Phoenix, a new
/// session's 410 with a token other than `stale` (a client holding a token reconnects).
fn assert_new_session(body: &Value, stale: &str, what: &str) {
    assert_eq!(body["status"], 410, "{what}: {body}");
    let token = body["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: {body}"));
    assert_ne!(token, stale, "{what}");
}

/// A join, to post where a session is expected to be gone.
fn a_join() -> String {
    json!([null, "1", "echo:x", "phx_join", {}]).to_string()
}

async fn try_open(base: &str, query: &str) -> (u16, Value) {
    let url = format!("{base}/longpoll?{query}");
    answer(reqwest::get(url).await.unwrap()).await
}

fn base(server: &Server) -> String {
    format!("{}/socket", server.url())
}

fn with_longpoll(change: impl FnOnce(&mut LongPollConfig)) -> TransportConfig {
    let mut config = config();
    change(config.longpoll.as_mut().unwrap());
    config
}

#[tokio::test]
async fn a_session_plays_a_channel_over_posts_and_polls_as_a_websocket_would() {
    let server = serve(config()).await;
    let session = Session::open(&base(&server), "vsn=2.0.0&user=ann").await;
    assert_eq!(server.endpoint.longpoll_sessions(), 1);
    session.assert_echoes("1").await;
    // A push, then a heartbeat (which the npm client does not send over long-poll, but may).
    session
        .send(&[
            json!(["1", "p", "echo:a", "push", {"x": 1}]),
            json!([null, "h", "phoenix", "heartbeat", {}]),
        ])
        .await;
    let mut got = session.receive(3).await;
    got.sort_by_key(Value::to_string);
    assert_eq!(
        got,
        [
            json!(["1", "p", "echo:a", "phx_reply", {"status": "ok", "response": {}}]),
            json!(["1", null, "echo:a", "pushed", {"x": 1}]),
            json!([null, "h", "phoenix", "phx_reply", {"status": "ok", "response": {}}]),
        ]
    );
}

#[tokio::test]
async fn v1_objects_too_and_the_token_in_the_phoenix_1_9_header() {
    let server = serve(config()).await;
    let session = Session::open(&base(&server), "vsn=1.0.0").await;
    session
        .send(&[json!({"topic": "echo:b", "event": "phx_join", "ref": "1", "payload": {}})])
        .await;
    let polled = reqwest::Client::new()
        .get(&session.url)
        .header("x-phoenix-longpoll-token", &session.token)
        .send()
        .await
        .unwrap();
    let (_, body) = answer(polled).await;
    assert_eq!(body["status"], 200);
    assert!(body["token"].is_string());
    let reply: Value = serde_json::from_str(body["messages"][0].as_str().unwrap()).unwrap();
    assert_eq!(reply["event"], "phx_reply");
    assert_eq!(reply["payload"]["status"], "ok");
}

#[tokio::test]
async fn a_poll_with_nothing_to_give_answers_204_after_the_window_with_a_new_token() {
    let server = serve(with_longpoll(|lp| lp.window = Duration::from_millis(200))).await;
    let session = Session::open(&base(&server), "vsn=2.0.0").await;
    let started = std::time::Instant::now();
    let body = session.poll().await;
    assert_eq!(
        (&body["status"], &body["messages"]),
        (&json!(204), &json!([]))
    );
    assert!(started.elapsed() >= Duration::from_millis(200));
    // Each answer brings a new token (the client keeps the latest), which resumes the session.
    let renewed = Session {
        token: body["token"].as_str().unwrap().to_owned(),
        ..session.via(&base(&server))
    };
    renewed.assert_echoes("1").await;
}

#[tokio::test]
async fn polls_keep_a_session_past_the_idle_timeout_and_without_them_it_expires() {
    // Margins for a busy machine: a poll every 200 ms against a 1 s idle timeout and a 2 s
    // expiry.
    let mut config = with_longpoll(|lp| {
        lp.window = Duration::from_millis(200);
        lp.expiry = Duration::from_secs(2);
    });
    config.limits.idle_timeout = Duration::from_secs(1);
    let server = serve(config).await;
    let session = Session::open(&base(&server), "vsn=2.0.0").await;
    session.assert_echoes("1").await;
    // Polling only (no message, no heartbeat) for three idle timeouts.
    let polling_until = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < polling_until {
        assert_eq!(session.poll().await["status"], 204);
    }
    session.assert_still_echoes().await;
    // No poll now: the session ends after its expiry, and its channel with it.
    tokio::time::timeout(PATIENCE, async {
        while server.endpoint.longpoll_sessions() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the session expires");
    assert_new_session(
        &session.poll().await,
        &session.token,
        "a poll after the expiry",
    );
    let (status, body) = session
        .post(&json!(["1", "e3", "echo:a", "echo", 3]).to_string())
        .await;
    assert_eq!((status, &body["status"]), (200, &json!(410)), "{body}");
}

#[tokio::test]
async fn a_window_longer_than_the_idle_timeout_is_shortened_so_waiting_polls_keep_the_session() {
    let mut config = with_longpoll(|lp| lp.window = Duration::from_secs(10));
    config.limits.idle_timeout = Duration::from_secs(1);
    let server = serve(config).await;
    let session = Session::open(&base(&server), "vsn=2.0.0").await;
    session.assert_echoes("1").await;
    // Each poll waits the shortened window (500 ms) out, far from the 10 s asked; for three
    // idle timeouts the client does nothing but poll.
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        let polled = std::time::Instant::now();
        assert_eq!(session.poll().await["status"], 204);
        assert!(polled.elapsed() < Duration::from_secs(5));
    }
    assert_eq!(server.endpoint.longpoll_sessions(), 1);
    session.assert_still_echoes().await;
}

#[tokio::test]
async fn forged_or_foreign_tokens_are_gone_and_the_session_they_imitate_plays_on() {
    let key = || SigningKey::new([7; 32]).unwrap();
    let server = serve_at(
        with_longpoll(|lp| lp.key = Some(key())),
        &["/socket", "/other"],
    )
    .await;
    let other_key = serve(with_longpoll(|lp| {
        lp.key = Some(SigningKey::new([8; 32]).unwrap())
    }))
    .await;
    let session = Session::open(&base(&server), "vsn=2.0.0").await;
    let (payload, mac) = session.token.split_once('.').unwrap();
    let mut forged_mac = mac.to_owned();
    forged_mac.replace_range(0..1, if mac.starts_with('A') { "B" } else { "A" });
    let foreign = Session::open(&base(&other_key), "vsn=2.0.0").await;
    for (what, token) in [
        ("a changed signature", format!("{payload}.{forged_mac}")),
        ("no signature", payload.to_owned()),
        ("a token of another key", foreign.token.clone()),
        ("garbage", "not-a-token".to_owned()),
    ] {
        let imitation = Session {
            token,
            ..session.via(&base(&server))
        };
        let (_, body) = imitation.post(&a_join()).await;
        assert_eq!(body["status"], 410, "{what}: {body}");
        assert!(body["reason"].is_string(), "{what}: {body}");
        assert_new_session(&imitation.poll().await, &imitation.token, what);
    }
    // A token is bound to the mount that made it.
    let elsewhere = session.via(&format!("{}/other", server.url()));
    let (_, body) = elsewhere.post(&a_join()).await;
    assert_eq!(body["status"], 410, "{body}");
    assert_new_session(&elsewhere.poll().await, &session.token, "another mount");
    session.assert_echoes("1").await;
    // The session itself and the five the polls opened (ended after a window unpolled).
    assert_eq!(server.endpoint.longpoll_sessions(), 6);
}

#[tokio::test]
async fn a_bad_line_is_answered_as_a_bad_frame_would_be_and_the_session_lives() {
    let server = serve(config()).await;
    let session = Session::open(&base(&server), "vsn=2.0.0").await;
    let (status, body) = session.post("[\"1\",\"2\",\"echo:a\"\n{not json").await;
    assert_eq!((status, body), (200, json!({"status": 200})));
    let replies = session.receive(2).await;
    for reply in &replies {
        assert_eq!(reply[3], "phx_reply");
        assert_eq!(reply[4]["status"], "error");
        assert_eq!(reply[4]["response"]["reason"], "invalid_message", "{reply}");
    }
    session.assert_echoes("1").await;
}

#[tokio::test]
async fn a_body_too_large_too_many_lines_or_a_line_too_long_is_refused_whole() {
    let mut config = with_longpoll(|lp| {
        lp.max_body = 2000;
        lp.max_messages = 3;
        lp.window = Duration::from_millis(300);
    });
    config.max_frame_size = 500;
    let server = serve(config).await;
    let session = Session::open(&base(&server), "vsn=2.0.0").await;
    let join = json!(["1", "1", "echo:a", "phx_join", {}]).to_string();
    let big = json!(["1", "2", "echo:a", "echo", "x".repeat(600)]).to_string();
    let cases = [
        (
            "a body over 2000 bytes",
            [join.as_str(); 80].join("\n"),
            413,
        ),
        ("four lines", [join.as_str(); 4].join("\n"), 400),
        ("a line over the frame size", format!("{join}\n{big}"), 413),
    ];
    for (what, body, expected) in cases {
        let (status, answer) = session.post(&body).await;
        assert_eq!(status, expected, "{what}");
        assert_eq!(answer["status"], expected, "{what}: {answer}");
        assert!(answer["reason"].is_string(), "{what}: {answer}");
    }
    // None of them reached the socket: nothing was joined, nothing answered.
    assert_eq!(session.poll().await["status"], 204);
    session.assert_echoes("1").await;
}

#[tokio::test]
async fn past_the_session_limit_a_new_one_gets_503_and_the_others_play_on() {
    let server = serve(with_longpoll(|lp| lp.max_sessions = 2)).await;
    let first = Session::open(&base(&server), "vsn=2.0.0").await;
    let _second = Session::open(&base(&server), "vsn=2.0.0").await;
    let (status, body) = try_open(&base(&server), "vsn=2.0.0").await;
    // Not JSON: the npm client treats it as a network error, and retries with its backoff.
    assert_eq!((status, body), (503, Value::Null));
    first.assert_echoes("1").await;
}

#[tokio::test]
async fn a_session_keeps_at_most_its_buffer_and_is_dropped_if_it_stays_full() {
    let mut config = with_longpoll(|lp| {
        lp.buffer = 3;
        lp.window = Duration::from_millis(200);
    });
    config.limits.idle_timeout = Duration::from_secs(1);
    let server = serve(config).await;
    let session = Session::open(&base(&server), "vsn=2.0.0").await;
    session.assert_echoes("1").await;
    let pushes: Vec<Value> = (0..4)
        .map(|n| json!(["1", format!("p{n}"), "echo:a", "push", n]))
        .collect();
    // Eight messages for the client (a push and a reply each), none polled for a while.
    session.send(&pushes).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let first = session.poll().await;
    assert_eq!(first["messages"].as_array().unwrap().len(), 3, "{first}");
    let rest = session.receive(5).await;
    assert_eq!(rest.len(), 5, "the socket wrote on once the poll made room");
    // Full again, and no poll: dropped after the idle timeout, well before the expiry (15 s).
    session.send(&pushes).await;
    let started = std::time::Instant::now();
    tokio::time::timeout(PATIENCE, async {
        while server.endpoint.longpoll_sessions() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the session is dropped");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn the_auth_token_header_reaches_the_hook_as_sent() {
    // The npm client's LongPoll decodes its `base64url.bearer.phx.` form (with `atob`) and
    // sends the token itself in the header, which Phoenix takes as it is: the hook gets the
    // same bytes as over a WebSocket.
    let server = serve(config()).await;
    let open = |query: &str| {
        reqwest::Client::new()
            .get(format!("{}/longpoll?vsn=2.0.0&{query}", base(&server)))
            .header("x-phoenix-authtoken", "a>b>c~d")
            .send()
    };
    let (_, body) = answer(open("auth=a%3Eb%3Ec~d").await.unwrap()).await;
    assert_eq!(body["status"], 410, "{body}");
    let (_, body) = answer(open("auth=other").await.unwrap()).await;
    assert_eq!(body["status"], 403, "{body}");
}

#[tokio::test]
async fn a_refused_connect_an_unknown_vsn_or_a_foreign_origin_is_status_403() {
    let server = serve(config()).await;
    for query in ["vsn=2.0.0&refuse=1", "vsn=3.0.0"] {
        let (status, body) = try_open(&base(&server), query).await;
        assert_eq!(
            (status, &body["status"]),
            (200, &json!(403)),
            "{query}: {body}"
        );
    }
    let foreign = reqwest::Client::new()
        .get(format!("{}/longpoll?vsn=2.0.0", base(&server)))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(answer(foreign).await.1["status"], 403);
    assert_eq!(server.endpoint.longpoll_sessions(), 0);
}

#[tokio::test]
async fn with_the_websocket_off_its_path_answers_404_and_long_poll_plays() {
    let mut config = config();
    config.websocket = false;
    let server = serve(config).await;
    let upgrade =
        phoenix_channels::test_client::upgrade_status(&server.socket_url("vsn=2.0.0"), &[]).await;
    assert_eq!(upgrade, 404);
    Session::open(&base(&server), "vsn=2.0.0")
        .await
        .assert_echoes("1")
        .await;
}

#[tokio::test]
async fn without_long_poll_its_path_is_not_served() {
    let mut config = config();
    config.longpoll = None;
    let server = serve(config).await;
    let status = reqwest::get(format!("{}/longpoll?vsn=2.0.0", base(&server)))
        .await
        .unwrap()
        .status();
    assert_eq!(status, 404);
}

#[tokio::test]
async fn on_shutdown_sessions_end_and_their_polls_are_answered_gone() {
    let server = serve(config()).await;
    let session = Session::open(&base(&server), "vsn=2.0.0").await;
    session.assert_echoes("1").await;
    let waiting = tokio::spawn(async move { session.poll().await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    tokio::time::timeout(PATIENCE, server.endpoint.shutdown())
        .await
        .expect("shutdown ends the session");
    assert_eq!(waiting.await.unwrap()["status"], 410);
    assert_eq!(server.endpoint.longpoll_sessions(), 0);
}

/// A replica of the replicas' one key, advertising what `advertise` makes of its address.
async fn replica(advertise: impl FnOnce(SocketAddr) -> Option<String>) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = with_longpoll(|lp| {
        lp.key = Some(SigningKey::new([9; 32]).unwrap());
        lp.advertise = advertise(addr);
    });
    serve_on(listener, config, &["/socket"])
}

/// Two replicas, each advertising its own address, or none.
async fn replicas(advertise: bool) -> (Server, Server) {
    let own = |addr: SocketAddr| advertise.then(|| addr.to_string());
    (replica(own).await, replica(own).await)
}

#[tokio::test]
async fn a_request_landing_on_another_replica_is_forwarded_to_the_one_holding_the_session() {
    let (holder, other) = replicas(true).await;
    let session = Session::open(&base(&holder), "vsn=2.0.0").await;
    // Every request through the replica that does not hold the session.
    session.via(&base(&other)).assert_echoes("1").await;
    assert_eq!(holder.endpoint.longpoll_sessions(), 1);
    assert_eq!(other.endpoint.longpoll_sessions(), 0);
    // A request already forwarded once is not forwarded again.
    let twice = reqwest::Client::new()
        .get(format!("{}/longpoll?token={}", base(&other), session.token))
        .header("x-phoenix-longpoll-forwarded", "1")
        .send()
        .await
        .unwrap();
    assert_new_session(&answer(twice).await.1, &session.token, "forwarded twice");
    assert_eq!(other.endpoint.longpoll_sessions(), 1, "opened by that GET");
    // The holder shut down, a POST for its session is 410 wherever it lands.
    holder.endpoint.shutdown().await;
    let (_, body) = session.via(&base(&other)).post(&a_join()).await;
    assert_eq!(body["status"], 410, "{body}");
}

#[tokio::test]
async fn a_holder_that_cannot_be_reached_makes_its_sessions_gone() {
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_address = dead.local_addr().unwrap().to_string();
    drop(dead);
    // Its tokens name an address where nothing listens.
    let unreachable = replica(|_| Some(dead_address)).await;
    let other = replica(|addr| Some(addr.to_string())).await;
    let session = Session::open(&base(&unreachable), "vsn=2.0.0").await;
    let via_other = session.via(&base(&other));
    let (_, body) = via_other.post(&a_join()).await;
    assert_eq!(body["status"], 410, "{body}");
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("cannot be reached"),
        "{body}"
    );
    assert_new_session(&via_other.poll().await, &session.token, "a poll");
}

#[tokio::test]
async fn without_an_advertised_address_another_replicas_session_is_gone() {
    let (holder, other) = replicas(false).await;
    let session = Session::open(&base(&holder), "vsn=2.0.0").await;
    let via_other = session.via(&base(&other));
    let (_, body) = via_other.post(&a_join()).await;
    assert_eq!(body["status"], 410, "{body}");
    assert_new_session(&via_other.poll().await, &session.token, "a poll");
    session.assert_echoes("1").await;
}

#[tokio::test]
async fn a_slow_body_a_chunked_body_too_large_or_a_second_post_at_once_is_refused() {
    let server = serve(with_longpoll(|lp| {
        lp.window = Duration::from_millis(300);
        lp.max_body = 1000;
    }))
    .await;
    let session = Session::open(&base(&server), "vsn=2.0.0").await;
    // Polled once: a session never polled would end after a window.
    session.assert_echoes("1").await;
    let url = format!("{}?token={}", session.url, session.token);
    // A body that never ends: 408 after the window; meanwhile it is the session's one POST.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    tx.send(Ok(b"[\"1\"".to_vec())).await.unwrap();
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let slow = reqwest::Client::new()
        .post(&url)
        .body(reqwest::Body::wrap_stream(stream))
        .send();
    let slow = tokio::spawn(slow);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, body) = session
        .post("[null,\"h\",\"phoenix\",\"heartbeat\",{}]")
        .await;
    assert_eq!((status, &body["status"]), (409, &json!(409)), "{body}");
    let (status, body) = answer(slow.await.unwrap().unwrap()).await;
    assert_eq!((status, &body["status"]), (408, &json!(408)), "{body}");
    drop(tx);
    // Chunked, with no length said: refused once it passes the limit.
    let chunks = vec![
        Ok::<_, std::io::Error>(vec![b' '; 600]),
        Ok(vec![b' '; 600]),
    ];
    let chunked = reqwest::Client::new()
        .post(&url)
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    let (status, body) = answer(chunked).await;
    assert_eq!((status, &body["status"]), (413, &json!(413)), "{body}");
    session.assert_still_echoes().await;
}

#[tokio::test]
async fn another_allowed_origin_may_read_the_answers_and_head_opens_nothing() {
    let mut config = config();
    config.allowed_origins = phoenix_channels::transport::AllowedOrigins::new(
        &["https://app.example".into()],
        [127, 0, 0, 1].into(),
    );
    let server = serve(config).await;
    let http = reqwest::Client::new();
    let url = format!("{}/longpoll?vsn=2.0.0", base(&server));
    let preflight = http
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    let allowed = |name: &str| preflight.headers()[name].to_str().unwrap().to_owned();
    assert_eq!(
        allowed("access-control-allow-origin"),
        "https://app.example"
    );
    assert!(allowed("access-control-allow-headers").contains("x-phoenix-longpoll-token"));
    assert!(allowed("access-control-allow-methods").contains("POST"));
    let opened = http
        .get(&url)
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        opened.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(answer(opened).await.1["status"], 410);
    let foreign = http
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(
        !foreign
            .headers()
            .contains_key("access-control-allow-origin")
    );
    let head = http.head(&url).send().await.unwrap();
    assert_eq!(head.status(), 405);
    assert_eq!(server.endpoint.longpoll_sessions(), 1, "the GET's alone");
}

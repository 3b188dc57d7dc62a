//! A store reached over TLS (`rediss://`): a Redis of the test's own whose certificate an
//! authority of the test's own signed, and which asks every client for a certificate of that
//! authority (Redis' default, `tls-auth-clients yes`).

use game_service::Config;
use game_service::testing::{RedisServer, TestCertificates, TestGameService};
use hangman_proto::v1::CreateGameRequest;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::support::{assert_refused, get, new_game, try_guess, until_health};

/// The flags that point a game service at `redis`'s TLS port, trusting `authority` and
/// showing `client` (a [`TestCertificates`]' `client.pem` and `client.key`) when given.
fn tls_flags(
    redis: &RedisServer,
    authority: &TestCertificates,
    client: Option<&TestCertificates>,
) -> Vec<String> {
    let mut flags = vec![
        "--store".to_owned(),
        redis.tls_url().expect("a Redis started with TLS"),
        "--store-tls-ca".to_owned(),
        path(authority, "ca.pem"),
        "--store-timeout".to_owned(),
        "1s".to_owned(),
    ];
    if let Some(client) = client {
        flags.extend([
            "--store-tls-cert".to_owned(),
            path(client, "client.pem"),
            "--store-tls-key".to_owned(),
            path(client, "client.key"),
        ]);
    }
    flags
}

fn path(certificates: &TestCertificates, name: &str) -> String {
    certificates.path(name).to_str().unwrap().to_owned()
}

async fn service(flags: &[String]) -> TestGameService {
    let mut flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    flags.push("--test-mode");
    TestGameService::builder().flags(&flags).spawn().await
}

#[tokio::test]
async fn over_tls_with_the_stores_own_authority_and_a_client_certificate_replicas_share_games() {
    let redis = RedisServer::start_tls();
    let certificates = redis.certificates().unwrap();
    let flags = tls_flags(&redis, certificates, Some(certificates));
    let a = service(&flags).await;
    let b = a.replica(&[]).await;
    until_health(&a, ServingStatus::Serving).await;
    let id = new_game(&mut a.client().await, "otter").await;
    try_guess(&mut b.client().await, &id, "t").await.unwrap();
    let tally = get(&mut a.client().await, &id).await.unwrap();
    assert_eq!(tally.letters.concat(), "_tt__");
    // The game is in the Redis behind the TLS port (asked on its plain one).
    assert!(
        redis.command("DBSIZE").starts_with(":1"),
        "{}",
        redis.command("DBSIZE")
    );
    b.stop().await;
    a.stop().await;
}

/// A game service with `flags` over `redis` cannot reach its store: its calls fail with
/// `UNAVAILABLE` for `why`, its health turns `NOT_SERVING`, and nothing is written.
async fn assert_store_refused(redis: &RedisServer, flags: &[String], why: &str) {
    let server = service(flags).await;
    let refused = server
        .client()
        .await
        .create_game(CreateGameRequest::default())
        .await
        .unwrap_err();
    assert_refused(&refused, Code::Unavailable, why);
    until_health(&server, ServingStatus::NotServing).await;
    assert!(redis.command("DBSIZE").starts_with(":0"));
    server.stop().await;
}

#[tokio::test]
async fn a_redis_whose_certificate_another_authority_signed_is_not_trusted() {
    let redis = RedisServer::start_tls();
    let stranger = TestCertificates::generate();
    let flags = tls_flags(&redis, &stranger, Some(redis.certificates().unwrap()));
    assert_store_refused(&redis, &flags, "invalid peer certificate").await;
}

#[tokio::test]
async fn a_redis_that_asks_for_a_client_certificate_refuses_a_service_without_one() {
    let redis = RedisServer::start_tls();
    let flags = tls_flags(&redis, redis.certificates().unwrap(), None);
    assert_store_refused(&redis, &flags, "CertificateRequired").await;
}

#[tokio::test]
async fn tls_files_that_are_missing_or_wrong_or_not_for_a_rediss_store_stop_start_up_with_a_reason()
{
    let ours = TestCertificates::generate();
    let theirs = TestCertificates::generate();
    let empty = ours.path("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let file = |certificates: &TestCertificates, name: &str| path(certificates, name);
    let rediss = "rediss://127.0.0.1:1";
    let cases = [
        (
            rediss,
            vec![("--store-tls-ca", file(&ours, "missing.pem"))],
            "--store-tls-ca",
        ),
        (
            rediss,
            vec![("--store-tls-ca", file(&ours, "empty.pem"))],
            "no PEM certificate",
        ),
        (
            rediss,
            vec![("--store-tls-ca", file(&ours, "client.key"))],
            "no PEM certificate",
        ),
        (
            rediss,
            vec![
                ("--store-tls-cert", file(&ours, "client.pem")),
                ("--store-tls-key", file(&ours, "empty.pem")),
            ],
            "no PEM private key",
        ),
        (
            rediss,
            vec![
                ("--store-tls-cert", file(&ours, "client.pem")),
                ("--store-tls-key", file(&theirs, "client.key")),
            ],
            "KeyMismatch",
        ),
        (
            "redis://127.0.0.1:1",
            vec![("--store-tls-ca", file(&ours, "ca.pem"))],
            "rediss://",
        ),
        (
            "memory",
            vec![("--store-tls-ca", file(&ours, "ca.pem"))],
            "rediss://",
        ),
    ];
    for (store, files, reason) in cases {
        let mut args = vec!["game-service", "--listen", "127.0.0.1:0", "--store", store];
        for (flag, path) in &files {
            args.extend([*flag, path.as_str()]);
        }
        let config = <Config as clap::Parser>::parse_from(&args);
        let Err(error) = game_service::start(config).await else {
            panic!("{args:?} was accepted");
        };
        assert!(error.to_string().contains(reason), "{args:?}: {error}");
    }
}

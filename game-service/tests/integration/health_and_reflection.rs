//! What operators and tools see: gRPC health (serving, then not serving on
//! shutdown), server reflection over v1 and v1alpha, and `/metrics` (with bounded labels).

use futures::StreamExt;
use game_service::testing::TestGameService;
use hangman_proto::v1::{CreateGameRequest, hangman_service_client::HangmanServiceClient};
use tonic::codegen::http::uri::PathAndQuery;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_prost::ProstCodec;
use tonic_reflection::pb::{v1, v1alpha};

use crate::support::channel;

const SERVICES: [&str; 4] = [
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
    "hangman.v1.HangmanService",
];

async fn server() -> TestGameService {
    // Open health watches hold graceful shutdown until the grace period ends.
    TestGameService::builder()
        .flags(&["--shutdown-timeout", "500ms"])
        .spawn()
        .await
}

#[tokio::test]
async fn health_reports_serving_then_not_serving_during_shutdown() {
    let server = server().await;
    let mut health = HealthClient::new(channel(&server).await);
    for service in ["", "hangman.v1.HangmanService"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status();
        assert_eq!(status, ServingStatus::Serving, "{service:?}");
    }
    let mut watch = health
        .watch(HealthCheckRequest {
            service: "hangman.v1.HangmanService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        watch.next().await.unwrap().unwrap().status(),
        ServingStatus::Serving
    );
    let stopping = tokio::spawn(server.stop());
    assert_eq!(
        watch.next().await.unwrap().unwrap().status(),
        ServingStatus::NotServing
    );
    stopping.await.unwrap();
}

/// The services a reflection client of `$version` (`v1` or `v1alpha`) lists, sorted. A macro
/// rather than a function: the two versions are the same messages generated into two modules,
/// with no trait in common.
macro_rules! listed_services {
    ($version:ident, $channel:expr) => {{
        use $version::{
            ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
            server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        };
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut replies = ServerReflectionClient::new($channel)
            .server_reflection_info(futures::stream::iter([request]))
            .await
            .unwrap()
            .into_inner();
        let Some(MessageResponse::ListServicesResponse(list)) =
            replies.next().await.unwrap().unwrap().message_response
        else {
            panic!("expected a service list");
        };
        let mut names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
        names.sort();
        names
    }};
}

#[tokio::test]
async fn reflection_v1_and_v1alpha_list_every_service() {
    let server = server().await;
    assert_eq!(listed_services!(v1, channel(&server).await), SERVICES);
    assert_eq!(listed_services!(v1alpha, channel(&server).await), SERVICES);
    server.stop().await;
}

#[tokio::test]
async fn reflection_v1_describes_the_api() {
    use v1::{
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let server = server().await;
    let mut client =
        v1::server_reflection_client::ServerReflectionClient::new(channel(&server).await);
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(
            "hangman.v1.HangmanService".into(),
        )),
    };
    let reply = client
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .unwrap()
        .into_inner()
        .next()
        .await;
    let Some(MessageResponse::FileDescriptorResponse(files)) =
        reply.unwrap().unwrap().message_response
    else {
        panic!("expected file descriptors");
    };
    assert!(!files.file_descriptor_proto.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn metrics_are_served_as_prometheus_text_over_http1() {
    let server = server().await;
    let mut client = HangmanServiceClient::connect(server.url()).await.unwrap();
    client
        .create_game(CreateGameRequest { word: None })
        .await
        .unwrap();
    // A method the server does not have: answered UNIMPLEMENTED, and its made-up path must
    // not become a label value (one per path a client invents).
    let mut grpc = tonic::client::Grpc::new(channel(&server).await);
    grpc.ready().await.unwrap();
    let status = grpc
        .unary::<(), (), _>(
            tonic::Request::new(()),
            PathAndQuery::from_static("/made.up.Service/Nothing"),
            ProstCodec::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented);
    let response = reqwest::get(format!("{}/metrics", server.url()))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    assert!(body.contains("hangman_games_created_total"), "{body}");
    assert!(
        body.contains(
            r#"grpc_server_handling_seconds_bucket{method="/hangman.v1.HangmanService/CreateGame",grpc_status="0""#
        ),
        "{body}"
    );
    assert!(
        body.contains(
            r#"grpc_server_handling_seconds_bucket{method="unimplemented",grpc_status="12""#
        ),
        "{body}"
    );
    assert!(!body.contains("made.up"), "{body}");
    server.stop().await;
}

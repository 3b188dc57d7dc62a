//! The game service's integration tests, in one binary (one link instead of one per file):
//! a real server on port 0, real gRPC, a real Redis, the real tools of the README.

mod support;

mod connection_age;
mod grpc_api;
mod half_open_connections;
mod health_and_reflection;
mod play;
mod presence;
mod readme_walkthrough;
mod recovery;
mod redis_presence;
mod redis_replicas;
mod redis_tls;
mod rules_properties;

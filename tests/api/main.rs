//! wxgate's integration tests: one binary, one link step.
//!
//! Everything a user sees goes through the real server on a free loopback
//! port; router-only behaviour goes through `oneshot`.

mod agent;
mod cli;
mod console;
mod console_browser;
mod conversation;
mod conversation_e2e;
mod delivery;
mod dingtalk;
mod edge;
mod errors;
mod feishu;
mod fixtures;
mod hygiene;
mod init;
mod kf;
mod logs;
mod markdown;
mod media;
mod multinode;
mod nginx_config;
mod operator;
mod operator_listener;
mod peer_samples;
mod platforms;
mod props;
mod reload;
mod store_breaker;
mod store_cluster;
mod store_sentinel;
mod store_tls;
mod store_upgrade;
mod streaming;
mod support;
mod token;
mod token_app;
mod vectors;
mod voice;
mod webhook;
mod wecom;
mod wecom_bot;
mod wecom_fake;
mod wecom_fixtures;

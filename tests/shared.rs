//! Checks over data kept outside the repository: the peer samples (inbound
//! pushes as twelve other WeChat SDKs record them) in the shared directory
//! that CI places beside the clone.
//!
//! Run with `WXGATE_SHARED_DIR=../shared cargo test --test shared` (`.ci/run`
//! does). Without the variable there is nothing to check and the test says so;
//! with it, a directory that is missing or incomplete fails.

use std::path::PathBuf;

use serde_json::Value;
use wxgate::message::Message;

/// The shared directory, when one is given.
fn shared_dir() -> Option<PathBuf> {
    std::env::var_os("WXGATE_SHARED_DIR").map(PathBuf::from)
}

#[test]
fn every_peer_sample_parses_with_the_type_its_sender_meant() {
    let Some(dir) = shared_dir() else {
        eprintln!("WXGATE_SHARED_DIR is not set: no shared data checked");
        return;
    };
    let samples = dir.join("peer-samples");
    let text = std::fs::read_to_string(samples.join("manifest.json"))
        .unwrap_or_else(|e| panic!("{}/manifest.json: {e}", samples.display()));
    let manifest: Vec<Value> = serde_json::from_str(&text).expect("manifest.json parses");
    assert!(!manifest.is_empty(), "an empty peer-sample manifest");
    let mut failures = Vec::new();
    for entry in &manifest {
        let file = entry["file"].as_str().expect("each entry names its file");
        let body = std::fs::read(samples.join(file))
            .unwrap_or_else(|e| panic!("{}/{file}: {e}", samples.display()));
        match Message::parse(&body) {
            Ok(msg) => {
                let meant = entry["msg_type"].as_str().unwrap_or_default();
                if msg.msg_type != meant {
                    failures.push(format!(
                        "{file}: MsgType {:?}, meant {meant:?}",
                        msg.msg_type
                    ));
                }
            }
            Err(e) => failures.push(format!("{file}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} peer samples:\n{}",
        failures.len(),
        manifest.len(),
        failures.join("\n")
    );
}

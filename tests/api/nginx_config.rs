//! `wxgate nginx-config`: the nginx locations for every callback path of a
//! config, and the paths it refuses to write.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_wxgate");

fn nginx_config(config: &str) -> std::process::Output {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), config).unwrap();
    Command::new(BIN)
        .args([
            "nginx-config",
            "--proxy-snippet",
            "/etc/nginx/snippets/p.conf",
            "--config",
        ])
        .arg(file.path())
        .output()
        .unwrap()
}

const THREE: &str = r#"
[server]
path = "/weixin"
[account]
token = "oatoken"
[[accounts]]
name = "corp"
kind = "wecom"
corp_id = "ww0123456789abcdef"
agent_id = 1000002
token = "corptoken"
encoding_aes_key = "Qm8tZ2Vu4lW3cK9pR7sY1vX5bN0aD6fH2jL8eT4uI3o"
[[accounts]]
name = "service"
kind = "kf"
path = "/kf"
corp_id = "ww0123456789abcdef"
token = "kftoken"
encoding_aes_key = "Kf8tZ2Vu4lW3cK9pR7sY1vX5bN0aD6fH2jL8eT4uI3o"
corp_secret = "s"
"#;

#[test]
fn every_account_path_gets_one_exact_location() {
    let out = nginx_config(THREE);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let locations: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("location = "))
        .collect();
    assert_eq!(
        locations,
        ["/weixin {", "/weixin/corp {", "/kf {"],
        "{text}"
    );
    assert_eq!(
        text.matches("    include /etc/nginx/snippets/p.conf;\n")
            .count(),
        3,
        "{text}"
    );
    assert!(text.contains("# account service (kf, mode safe)"), "{text}");
    // Balanced braces: the snippet is included inside a server block.
    assert_eq!(text.matches('{').count(), text.matches('}').count());
}

#[test]
fn paths_nginx_would_read_differently_are_refused() {
    for path in ["/wx;b", "/wx/%41", "/metrics", "/admin/wx"] {
        let config = format!(
            "[account]\ntoken = \"t\"\n[[accounts]]\nname = \"b\"\npath = \"{path}\"\ntoken = \"u\"\n"
        );
        let out = nginx_config(&config);
        assert_eq!(out.status.code(), Some(78), "{path}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("account b: path"), "{path}: {err}");
        assert!(out.stdout.is_empty(), "{path}: nothing half-written");
    }
}

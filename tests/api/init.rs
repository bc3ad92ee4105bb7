//! `wxgate init`: the config it writes passes `check-config`, is served, and
//! answers `wxgate simulate`; the values it prints are the ones in the file.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::BinaryServer;

const BIN: &str = env!("CARGO_BIN_EXE_wxgate");

fn wxgate(args: &[&str], config: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(config)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

fn init(dir: &Path, file: &str, flags: &[&str]) -> (std::path::PathBuf, String) {
    let path = dir.join(file);
    let out = Command::new(BIN)
        .arg("init")
        .arg("--output")
        .arg(&path)
        .args(flags)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "init {flags:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (path, String::from_utf8(out.stdout).unwrap())
}

/// The value printed after `label` in init's console block.
fn printed<'a>(stdout: &'a str, label: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label} in {stdout}"))
        .trim()
}

fn check_config(path: &Path) -> String {
    let out = wxgate(&["check-config"], path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn an_official_account_from_init_answers_the_simulator() {
    let dir = tempfile::tempdir().unwrap();
    let (path, stdout) = init(
        dir.path(),
        "oa.toml",
        &["--kind", "official", "--app-id", "wx5f3a9c2e7b1d4068"],
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let token = printed(&stdout, "Token");
    let key = printed(&stdout, "EncodingAESKey");
    assert_eq!(token.len(), 32);
    assert_eq!(key.len(), 43);
    assert!(text.contains(&format!("token = \"{token}\"")), "{text}");
    assert!(
        text.contains(&format!("encoding_aes_key = \"{key}\"")),
        "{text}"
    );
    assert_eq!(printed(&stdout, "URL"), "https://wx.example.com/weixin");
    assert_eq!(printed(&stdout, "消息加解密方式"), "安全模式");
    assert!(check_config(&path).contains("account default (official, mode safe"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the file holds secrets: owner only");
    }

    let server = BinaryServer::start(&path).await;
    let url = format!("{}/weixin", server.base);
    let out = wxgate(&["simulate", "--url", &url, "text", "你好"], &path);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("signature verified, decrypted"), "{said}");
    assert!(said.contains("Content: 你好！wxgate 已连接。"), "{said}");

    // A second run makes other secrets, and will not overwrite the first.
    let (_, again) = init(
        dir.path(),
        "oa2.toml",
        &["--kind", "official", "--mode", "plain"],
    );
    assert_ne!(printed(&again, "Token"), token);
    let refused = Command::new(BIN)
        .args(["init", "--kind", "official", "--mode", "plain", "--output"])
        .arg(&path)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        text,
        "left as it was"
    );
}

#[tokio::test]
async fn wecom_and_kf_accounts_from_init_are_served_at_their_paths() {
    let dir = tempfile::tempdir().unwrap();
    let (wecom, stdout) = init(
        dir.path(),
        "wecom.toml",
        &[
            "--kind",
            "wecom",
            "--corp-id",
            "ww0123456789abcdef",
            "--agent-id",
            "1000002",
            "--path",
            "/weixin/corp",
        ],
    );
    assert_eq!(
        printed(&stdout, "URL"),
        "https://wx.example.com/weixin/corp"
    );
    assert!(check_config(&wecom).contains("(wecom, mode safe"));
    let server = BinaryServer::start(&wecom).await;
    let url = format!("{}/weixin/corp", server.base);
    let out = wxgate(&["simulate", "--url", &url, "text", "hello"], &wecom);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("Content: 你好！wxgate 已连接。"), "{said}");

    let (kf, stdout) = init(
        dir.path(),
        "kf.toml",
        &[
            "--kind",
            "kf",
            "--corp-id",
            "ww0123456789abcdef",
            "--corp-secret",
            "kfsecret",
        ],
    );
    assert_eq!(printed(&stdout, "URL"), "https://wx.example.com/kf");
    assert!(check_config(&kf).contains("(kf, mode safe"));
    let server = BinaryServer::start(&kf).await;
    let url = format!("{}/kf", server.base);
    let out = wxgate(&["verify-url", "--url", &url], &kf);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn missing_ids_are_named_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    for (flags, flag) in [
        (vec!["--kind", "official", "--mode", "safe"], "--app-id"),
        (vec!["--kind", "wecom", "--corp-id", "ww1"], "--agent-id"),
        (vec!["--kind", "kf", "--corp-id", "ww1"], "--corp-secret"),
        (
            vec!["--kind", "wecom", "--mode", "plain"],
            "always encrypted",
        ),
        (vec!["--token", "no spaces allowed"], "--token"),
    ] {
        let path = dir.path().join("x.toml");
        let out = Command::new(BIN)
            .arg("init")
            .arg("--output")
            .arg(&path)
            .args(&flags)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{flags:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(flag), "{flags:?}: {err}");
        assert!(!path.exists(), "{flags:?}: no file written");
    }
}

/// On a terminal, what the flags leave out is asked for (the kind, the path,
/// then the kind's ids); `script` gives the command a terminal.
#[test]
fn on_a_terminal_init_asks_for_what_flags_leave_out() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("asked.toml");
    let mut child = Command::new("script")
        .args(["-qec"])
        .arg(format!("{BIN} init --output {}", path.display()))
        .arg("/dev/null")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("util-linux `script` runs the command on a terminal");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"wecom\n/weixin/corp\nww0123456789abcdef\n1000002\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    for question in ["Account kind", "Callback path", "CorpID", "AgentId"] {
        assert!(said.contains(question), "not asked {question}: {said}");
    }
    assert!(
        !said.contains("Message encryption"),
        "WeCom has no mode to ask: {said}"
    );
    let report = check_config(&path);
    assert!(
        report.contains("account default (wecom, mode safe, 2 rule(s)) at /weixin/corp"),
        "{report}"
    );
}

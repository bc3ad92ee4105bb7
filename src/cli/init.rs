//! `wxgate init`: a first account's config, written and checked, and the
//! values to paste into the WeChat / WeCom console.
//!
//! Flags give the kind, path, mode and ids; what is missing is asked for
//! when stdin is a terminal, and is an error otherwise. A token and an
//! EncodingAESKey are generated when none is given. The file it writes is
//! loaded back through the same validation as `check-config` before the
//! command reports success.

use std::fmt::Write as _;
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use rand::distributions::Alphanumeric;
use rand::Rng;

use super::args::{InitArgs, InitKind, ModeArg};
use super::EXIT_CONFIG;
use crate::crypto::AesKey;
use crate::Config;

/// Exit code for a missing or bad flag (as clap's usage errors).
const EXIT_USAGE: u8 = 2;

/// Everything the file is written from, once every question is answered.
struct Answers {
    kind: InitKind,
    path: String,
    mode: ModeArg,
    token: String,
    aes_key: String,
    app_id: Option<String>,
    app_secret: Option<String>,
    corp_id: Option<String>,
    agent_id: Option<i64>,
    corp_secret: Option<String>,
    listen: String,
    public_url: String,
}

/// Writes the config, checks it, prints what to paste into the console.
pub(super) fn run(args: InitArgs) -> ExitCode {
    if args.output.exists() && !args.force {
        eprintln!(
            "error: {} exists (pass --force to overwrite it)",
            args.output.display()
        );
        return ExitCode::from(EXIT_USAGE);
    }
    let interactive = !args.no_input && std::io::stdin().is_terminal();
    let mut ask = Prompt::new(interactive);
    let answers = match collect(args.clone(), &mut ask) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let text = render(&answers);
    if let Err(e) = write_private(&args.output, &text) {
        eprintln!("error: cannot write {}: {e}", args.output.display());
        return ExitCode::FAILURE;
    }
    // The same validation as `check-config` and `serve`.
    if let Err(e) = Config::load(&args.output) {
        eprintln!(
            "error: the written config does not validate (a bug in init, or a bad value given)\n{e}"
        );
        return ExitCode::from(EXIT_CONFIG);
    }
    print!("{}", console_values(&answers, &args.output));
    ExitCode::SUCCESS
}

/// Answers questions from flags, else from the terminal, else fails.
struct Prompt {
    interactive: bool,
}

impl Prompt {
    fn new(interactive: bool) -> Self {
        Prompt { interactive }
    }

    /// The flag's value, or the answer to `question` (`default` on an empty
    /// line), or an error naming the flag.
    fn value(
        &mut self,
        given: Option<String>,
        question: &str,
        default: Option<&str>,
        flag: &str,
    ) -> Result<String, String> {
        if let Some(v) = given {
            return Ok(v);
        }
        if !self.interactive {
            return default.map(str::to_owned).ok_or_else(|| {
                format!("{flag} is required (stdin is not a terminal: no prompts)")
            });
        }
        let mut stderr = std::io::stderr();
        let shown = default.map(|d| format!(" [{d}]")).unwrap_or_default();
        let _ = write!(stderr, "{question}{shown}: ");
        let _ = stderr.flush();
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        let line = line.trim();
        match (line.is_empty(), default) {
            (false, _) => Ok(line.to_owned()),
            (true, Some(d)) => Ok(d.to_owned()),
            (true, None) => Err(format!("{flag} is required")),
        }
    }
}

fn parse_kind(s: &str) -> Result<InitKind, String> {
    match s {
        "official" => Ok(InitKind::Official),
        "wecom" => Ok(InitKind::Wecom),
        "kf" => Ok(InitKind::Kf),
        other => Err(format!("kind must be official, wecom or kf, not {other:?}")),
    }
}

fn parse_mode(s: &str) -> Result<ModeArg, String> {
    match s {
        "plain" => Ok(ModeArg::Plain),
        "compatible" => Ok(ModeArg::Compatible),
        "safe" => Ok(ModeArg::Safe),
        other => Err(format!(
            "mode must be plain, compatible or safe, not {other:?}"
        )),
    }
}

fn mode_name(mode: ModeArg) -> &'static str {
    match mode {
        ModeArg::Plain => "plain",
        ModeArg::Compatible => "compatible",
        ModeArg::Safe => "safe",
    }
}

fn kind_name(kind: InitKind) -> &'static str {
    match kind {
        InitKind::Official => "official",
        InitKind::Wecom => "wecom",
        InitKind::Kf => "kf",
    }
}

/// `len` random letters and digits, the alphabet the consoles accept.
fn random_alnum(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

fn collect(args: InitArgs, ask: &mut Prompt) -> Result<Answers, String> {
    let kind = match args.kind {
        Some(k) => k,
        None => parse_kind(&ask.value(
            None,
            "Account kind (official = 公众号, wecom = 企业微信自建应用, kf = 微信客服)",
            Some("official"),
            "--kind",
        )?)?,
    };
    let default_path = if kind == InitKind::Kf {
        "/kf"
    } else {
        "/weixin"
    };
    let path = ask.value(args.path, "Callback path", Some(default_path), "--path")?;
    if !path.starts_with('/') || path.len() < 2 {
        return Err(format!("--path {path:?} must start with / and name a path"));
    }
    // WeCom and 微信客服 pushes are always encrypted.
    let mode = match (kind, args.mode) {
        (InitKind::Official, Some(m)) => m,
        (InitKind::Official, None) => parse_mode(&ask.value(
            None,
            "Message encryption (plain = 明文, compatible = 兼容, safe = 安全)",
            Some("safe"),
            "--mode",
        )?)?,
        (_, Some(ModeArg::Safe) | None) => ModeArg::Safe,
        (_, Some(m)) => {
            return Err(format!(
                "--mode {}: {} accounts are always encrypted (safe)",
                mode_name(m),
                kind_name(kind)
            ))
        }
    };
    let token = args.token.unwrap_or_else(|| random_alnum(32));
    if !(3..=32).contains(&token.len()) || !token.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err("--token must be 3–32 letters and digits (the console's rule)".into());
    }
    let aes_key = args.encoding_aes_key.unwrap_or_else(|| random_alnum(43));
    if let Err(e) = AesKey::from_encoding_aes_key(&aes_key) {
        return Err(format!("--encoding-aes-key: {e}"));
    }
    let mut answers = Answers {
        kind,
        path,
        mode,
        token,
        aes_key,
        app_id: None,
        app_secret: args.app_secret,
        corp_id: None,
        agent_id: None,
        corp_secret: args.corp_secret.clone(),
        listen: args.listen,
        public_url: args.public_url.trim_end_matches('/').to_owned(),
    };
    match kind {
        InitKind::Official => {
            // The AppID is the receive id of encrypted messages.
            let needed = !matches!(mode, ModeArg::Plain);
            answers.app_id = match (args.app_id, needed) {
                (Some(id), _) => Some(id),
                (None, true) => {
                    Some(ask.value(None, "AppID (设置与开发 → 基本配置)", None, "--app-id")?)
                }
                (None, false) => None,
            };
        }
        InitKind::Wecom | InitKind::Kf => {
            answers.corp_id = Some(ask.value(
                args.corp_id,
                "CorpID (我的企业 → 企业信息 → 企业ID)",
                None,
                "--corp-id",
            )?);
            if kind == InitKind::Wecom {
                let id = ask.value(
                    args.agent_id.map(|a| a.to_string()),
                    "AgentId (应用管理 → the app)",
                    None,
                    "--agent-id",
                )?;
                answers.agent_id = Some(
                    id.parse()
                        .map_err(|_| format!("--agent-id {id:?} is not a number"))?,
                );
            } else {
                answers.corp_secret = Some(ask.value(
                    args.corp_secret,
                    "微信客服 Secret (微信客服 → API → Secret)",
                    None,
                    "--corp-secret",
                )?);
            }
        }
    }
    Ok(answers)
}

/// A TOML string literal.
fn quoted(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// The commented config file.
fn render(a: &Answers) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# wxgate: one {} account, written by `wxgate init`.\n\
         # Check it with `wxgate check-config --config FILE`; every key is described\n\
         # in docs/configuration.md.\n\
         #\n\
         # This file holds secrets (token, EncodingAESKey{}): keep it private\n\
         # (mode 0600), or move them to the environment (WXGATE_TOKEN,\n\
         # WXGATE_ENCODING_AES_KEY, …) and delete them here.\n",
        kind_name(a.kind),
        if a.app_secret.is_some() || a.corp_secret.is_some() {
            ", secret"
        } else {
            ""
        }
    );
    let _ = writeln!(
        out,
        "[server]\n\
         # Behind nginx (deploy/nginx/) on this host; WeChat reaches it as\n\
         # {}{}\n\
         listen = {}\n\
         path = {}\n",
        a.public_url,
        a.path,
        quoted(&a.listen),
        quoted(&a.path)
    );
    let _ = writeln!(out, "[account]\nkind = {}", quoted(kind_name(a.kind)));
    match a.kind {
        InitKind::Official => {
            let _ = writeln!(
                out,
                "# plain = 明文, compatible = 兼容, safe = 安全 (the console's 消息加解密方式)\n\
                 mode = {}",
                quoted(mode_name(a.mode))
            );
            match &a.app_id {
                Some(id) => {
                    let _ = writeln!(out, "app_id = {}", quoted(id));
                }
                None => {
                    let _ = writeln!(
                        out,
                        "# app_id = \"wx…\"            # needed for compatible and safe mode"
                    );
                }
            }
        }
        InitKind::Wecom => {
            let _ = writeln!(
                out,
                "corp_id = {}                 # the receive id of every push\nagent_id = {}",
                quoted(a.corp_id.as_deref().unwrap_or_default()),
                a.agent_id.unwrap_or_default()
            );
        }
        InitKind::Kf => {
            let _ = writeln!(
                out,
                "corp_id = {}                 # the receive id of every push",
                quoted(a.corp_id.as_deref().unwrap_or_default())
            );
        }
    }
    let _ = writeln!(
        out,
        "# The console's Token and EncodingAESKey: paste these two there.\n\
         token = {}\n\
         encoding_aes_key = {}",
        quoted(&a.token),
        quoted(&a.aes_key)
    );
    match (a.kind, &a.app_secret, &a.corp_secret) {
        (InitKind::Official, Some(s), _) => {
            let _ = writeln!(
                out,
                "# For late answers through the customer-service API.\napp_secret = {}",
                quoted(s)
            );
        }
        (InitKind::Official, None, _) => {
            let _ = writeln!(
                out,
                "# app_secret = \"…\"           # for late answers (or WXGATE_APP_SECRET)"
            );
        }
        (InitKind::Wecom, Some(s), _) | (_, _, Some(s)) => {
            let _ = writeln!(
                out,
                "# The {} secret: access tokens for sending.\ncorp_secret = {}",
                if a.kind == InitKind::Kf {
                    "微信客服"
                } else {
                    "app's"
                },
                quoted(s)
            );
        }
        (_, _, None) => {
            let _ = writeln!(
                out,
                "# corp_secret = \"…\"          # the app's Secret, for late answers (or WXGATE_CORP_SECRET)"
            );
        }
    }
    let _ = writeln!(
        out,
        "\n[store]\n\
         # \"redis\" (with url = \"redis://…\") to share dedup and tokens between nodes.\n\
         backend = \"memory\"\n\n\
         # What to answer. Rules are tried in order; the first match replies.\n\
         [[rules]]\n\
         name = \"hello\"\n\
         match = {{ text = [\"你好\", \"hello\"], ignore_case = true }}\n\
         reply = {{ type = \"text\", content = \"你好！wxgate 已连接。\" }}\n\n\
         [[rules]]\n\
         name = \"welcome\"\n\
         match = {{ event = \"subscribe\" }}\n\
         reply = {{ type = \"text\", content = \"欢迎关注！\" }}"
    );
    out
}

/// What to paste where, and how to try it.
fn console_values(a: &Answers, output: &Path) -> String {
    let place = match a.kind {
        InitKind::Official => "公众平台 → 设置与开发 → 基本配置 → 服务器配置",
        InitKind::Wecom => "企业微信管理后台 → 应用管理 → the app → 接收消息 → 设置API接收",
        InitKind::Kf => "企业微信管理后台 → 微信客服 → API → 回调配置",
    };
    let mut out = String::new();
    let _ = writeln!(out, "wrote {} (checked: valid)\n", output.display());
    let _ = writeln!(out, "In {place}, enter:");
    let _ = writeln!(out, "  URL             {}{}", a.public_url, a.path);
    let _ = writeln!(out, "  Token           {}", a.token);
    let _ = writeln!(out, "  EncodingAESKey  {}", a.aes_key);
    if a.kind == InitKind::Official {
        let chinese = match a.mode {
            ModeArg::Plain => "明文模式",
            ModeArg::Compatible => "兼容模式",
            ModeArg::Safe => "安全模式",
        };
        let _ = writeln!(out, "  消息加解密方式  {chinese}");
    }
    let _ = writeln!(
        out,
        "\nStart it, then try it as WeChat would before saving in the console:\n  \
         wxgate serve --config {0}\n  \
         wxgate simulate --config {0} --url http://{1}{2} text 你好",
        output.display(),
        a.listen,
        a.path
    );
    out
}

/// Writes the file readable by its owner only (it holds secrets).
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_are_what_the_console_accepts() {
        for _ in 0..50 {
            let key = random_alnum(43);
            assert!(AesKey::from_encoding_aes_key(&key).is_ok(), "{key}");
            let token = random_alnum(32);
            assert!(token.bytes().all(|b| b.is_ascii_alphanumeric()));
        }
        assert_ne!(random_alnum(32), random_alnum(32));
    }

    #[test]
    fn without_a_terminal_a_missing_id_is_an_error_naming_its_flag() {
        let mut ask = Prompt::new(false);
        let err = ask.value(None, "AppID", None, "--app-id").unwrap_err();
        assert!(err.contains("--app-id"), "{err}");
        assert_eq!(
            ask.value(None, "path", Some("/weixin"), "--path").unwrap(),
            "/weixin"
        );
    }
}

//! The wxgate binary: parse the command line, load the config, run.

use std::io::Read;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use wxgate::cli::{
    Cli, Command, CryptoCommand, KindCommand, PartyArgs, RulesCommand, SimulateArgs,
};
use wxgate::config::{AccountConfig, Mode};
use wxgate::rules::RuleSet;
use wxgate::simulate::{self, Kind, Parties};
use wxgate::{telemetry, Application, Config};

/// Exit code for an invalid configuration (sysexits EX_CONFIG); systemd's
/// `RestartPreventExitStatus=78` stops a restart loop on it.
const EXIT_CONFIG: u8 = 78;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: invalid configuration\n{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let command = cli.command.unwrap_or(Command::Serve { listen: None });
    if let Command::CheckConfig = command {
        println!(
            "{}: OK, listen {}",
            config.source.display(),
            config.server.listen
        );
        for a in &config.accounts {
            println!(
                "  account {} ({}, mode {}, {} rule(s)) at {}",
                a.name,
                a.account.kind.as_str(),
                a.account.mode.as_str(),
                a.rules.len(),
                a.path
            );
        }
        return ExitCode::SUCCESS;
    }
    if let Command::Serve { listen } = command {
        return serve(config, listen);
    }
    let account = match config.find_account(cli.account.as_deref()) {
        Ok(a) => &a.account,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let rules = &config
        .find_account(cli.account.as_deref())
        .map(|a| a.rules.clone());
    match command {
        Command::CheckConfig | Command::Serve { .. } => ExitCode::SUCCESS,
        Command::Simulate(args) => simulate(account, args),
        Command::VerifyUrl { url } => block_on(async {
            match simulate::verify_url(account, &url).await {
                Ok(echostr) => {
                    println!("✓ URL verification would pass: {url} echoed {echostr} exactly");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("✗ URL verification would fail: {e}");
                    ExitCode::FAILURE
                }
            }
        }),
        Command::Rules {
            command: RulesCommand::Test { parties, kind },
        } => match rules {
            Ok(rules) => rules_test(account, rules, &parties, &kind),
            Err(_) => ExitCode::from(EXIT_CONFIG),
        },
        Command::Crypto { command } => crypto(account, command),
        Command::Token => print_token(&config, cli.account.as_deref()),
    }
}

/// `wxgate token`: the token alone on stdout (for scripts), its expiry on stderr.
fn print_token(config: &Config, account: Option<&str>) -> ExitCode {
    telemetry::init(&config.log);
    block_on(async {
        match wxgate::startup::fetch_access_token(config, account).await {
            Ok(token) => {
                println!("{}", token.access_token.expose());
                eprintln!("expires at {} (unix)", token.expires_at);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                if e.is_config() {
                    ExitCode::from(EXIT_CONFIG)
                } else {
                    ExitCode::FAILURE
                }
            }
        }
    })
}

fn block_on<F: std::future::Future<Output = ExitCode>>(future: F) -> ExitCode {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(future),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parties(args: &PartyArgs) -> Parties {
    Parties {
        from_user: args.from.clone(),
        to_user: args.to.clone(),
    }
}

fn simulate(account: &AccountConfig, args: SimulateArgs) -> ExitCode {
    let kind = match (&args.xml, &args.kind) {
        (Some(_), Some(_)) => {
            eprintln!("error: give a message kind or --xml FILE, not both");
            return ExitCode::from(2);
        }
        (Some(path), _) => match std::fs::read_to_string(path) {
            Ok(text) => Kind::Raw(text),
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        },
        (None, Some(kind)) => kind.to_kind(),
        (None, None) => {
            eprintln!(
                "error: say what to send: a message kind (text, image, event, …) or --xml FILE"
            );
            return ExitCode::from(2);
        }
    };
    let mode: Mode = args.mode.map(Into::into).unwrap_or(account.mode);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let xml = simulate::build_xml(&kind, &parties(&args.parties), now);
    block_on(async {
        if !args.json {
            let how = if account.kind.is_wecom() {
                "WeCom, encrypted".to_owned()
            } else {
                format!("{} mode", mode.as_str())
            };
            println!("→ POST {} ({how})\n  {}", args.url, xml);
        }
        match simulate::send(account, &args.url, mode, &xml).await {
            Ok(reply) => {
                if args.json {
                    match serde_json::to_string_pretty(&reply) {
                        Ok(text) => println!("{text}"),
                        Err(e) => eprintln!("error: {e}"),
                    }
                } else {
                    print!("{}", simulate::describe(&reply));
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                if args.json {
                    println!("{}", serde_json::json!({ "error": e.to_string() }));
                }
                eprintln!("✗ {e}");
                ExitCode::FAILURE
            }
        }
    })
}

fn rules_test(
    account: &AccountConfig,
    rules: &RuleSet,
    parties: &PartyArgs,
    kind: &KindCommand,
) -> ExitCode {
    let xml = simulate::build_xml(&kind.to_kind(), &self::parties(parties), 0);
    let message = match wxgate::message::Message::parse(xml.as_bytes()) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let decision = rules.evaluate(&message);
    if let Some(upstream) = &decision.upstream {
        let rule = decision.rule.as_deref().unwrap_or("default_reply");
        println!("matched: {rule}");
        println!("reply: handed to upstream \"{upstream}\" (its answer is the reply)");
        return ExitCode::SUCCESS;
    }
    match &decision.rule {
        Some(rule) => println!("matched rule: {rule}"),
        None if decision.reply.msg_type().is_some() => {
            println!("no rule matched: the default reply applies")
        }
        None => println!("no rule matched: answered with `success` (nothing is shown)"),
    }
    match decision.reply.render(
        &message.from_user,
        &message.to_user,
        0,
        message.max_articles(),
    ) {
        Some(xml) => {
            let reply = simulate::open_reply(account, 200, &xml, 0.0);
            if let Ok(reply) = reply {
                print!(
                    "{}",
                    simulate::describe(&reply)
                        .lines()
                        .skip(1)
                        .collect::<Vec<_>>()
                        .join("\n")
                );
                println!();
            }
        }
        None => println!("reply: success"),
    }
    ExitCode::SUCCESS
}

fn read_stdin() -> String {
    let mut text = String::new();
    let _ = std::io::stdin().read_to_string(&mut text);
    text.trim_end_matches(['\r', '\n']).to_owned()
}

fn crypto(account: &AccountConfig, command: CryptoCommand) -> ExitCode {
    let token = account.token.expose();
    let Some(crypto) = account.crypto.as_ref() else {
        if let CryptoCommand::Sign {
            timestamp,
            nonce,
            encrypt,
        } = &command
        {
            return sign(token, timestamp, nonce, encrypt.as_deref());
        }
        eprintln!("error: account.encoding_aes_key and app_id are needed (in the config or the environment)");
        return ExitCode::from(EXIT_CONFIG);
    };
    match command {
        CryptoCommand::Encrypt { message } => {
            println!("{}", crypto.encrypt(&message.unwrap_or_else(read_stdin)));
            ExitCode::SUCCESS
        }
        CryptoCommand::Decrypt { input } => {
            let input = input.unwrap_or_else(read_stdin);
            let encrypt = match wxgate::message::envelope::parse_encrypted(input.as_bytes()) {
                Ok(Some(body)) => body.encrypt,
                _ => input.trim().to_owned(),
            };
            match crypto.decrypt_parts(&encrypt) {
                Ok((msg, receive_id)) => {
                    if receive_id != crypto.receive_id() {
                        eprintln!(
                            "warning: receive id is {receive_id:?}, not the configured app_id {:?}",
                            crypto.receive_id()
                        );
                    }
                    println!("{msg}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("✗ cannot decrypt: {e} (WXBizMsgCrypt code {})", e.code());
                    ExitCode::FAILURE
                }
            }
        }
        CryptoCommand::Sign {
            timestamp,
            nonce,
            encrypt,
        } => sign(token, &timestamp, &nonce, encrypt.as_deref()),
    }
}

fn sign(token: &str, timestamp: &str, nonce: &str, encrypt: Option<&str>) -> ExitCode {
    match encrypt {
        Some(e) => println!(
            "{}",
            wxgate::crypto::msg_signature(token, timestamp, nonce, e)
        ),
        None => println!("{}", wxgate::crypto::signature(token, timestamp, nonce)),
    }
    ExitCode::SUCCESS
}

fn serve(config: Config, listen: Option<std::net::SocketAddr>) -> ExitCode {
    telemetry::init(&config.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let accounts = config.accounts.len();
        let mode = config.primary().account.mode;
        let rules = config.primary().rules.len();
        let overrides = wxgate::startup::Overrides {
            listen,
            ..Default::default()
        };
        let app = match Application::build_with(config, overrides).await {
            Ok(app) => app,
            Err(e) => {
                tracing::error!(error = %e, "cannot start");
                eprintln!("error: {e}");
                return if e.is_config() {
                    ExitCode::from(EXIT_CONFIG)
                } else {
                    ExitCode::FAILURE
                };
            }
        };
        if let Some(reloader) = app.reloader() {
            tokio::spawn(wxgate::reload::on_sighup(Arc::clone(&reloader)));
        }
        tracing::info!(addr = %app.local_addr(), mode = mode.as_str(), rules, accounts, "wxgate listening");
        match app.run_until_stopped(wxgate::shutdown::signal()).await {
            Ok(()) => {
                tracing::info!("stopped");
                ExitCode::SUCCESS
            }
            Err(e) => {
                tracing::error!(error = %e, "server failed");
                ExitCode::FAILURE
            }
        }
    })
}

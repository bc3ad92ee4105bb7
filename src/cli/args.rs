//! Command-line interface (clap). No I/O beyond argv.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::Mode;
use crate::platform::simulate::Kind;

/// wxgate: a WeChat callback gateway.
#[derive(Debug, Parser)]
#[command(name = "wxgate", version, about)]
pub struct Cli {
    /// Configuration file.
    #[arg(
        long,
        short,
        global = true,
        env = "WXGATE_CONFIG",
        default_value = "config/wxgate.toml"
    )]
    pub config: PathBuf,
    /// Which account the command speaks for (simulate, verify-url, rules,
    /// crypto, token); default: `[account]`, or the first of `[[accounts]]`.
    #[arg(long, short = 'a', global = true, env = "WXGATE_ACCOUNT")]
    pub account: Option<String>,
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Sub-commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the callback server (the default).
    Serve {
        /// Listen on this address instead of `server.listen`.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Write a first account's config (asking for what flags leave out
    /// when stdin is a terminal) and print the values for the console.
    Init(InitArgs),
    /// Validate the configuration and exit (0 when valid, 78 when not).
    CheckConfig {
        /// The configuration in force: also check the file could replace it
        /// by a reload (no restart-only setting changed, no account's rules
        /// emptied unless it says `rules = []`) and print each account's
        /// rules diff.
        #[arg(long, value_name = "FILE")]
        against: Option<std::path::PathBuf>,
    },
    /// Print nginx `location` blocks for every callback path in the config
    /// (install as a snippet included by deploy/nginx/wxgate.conf).
    NginxConfig {
        /// Where deploy/nginx/wxgate-proxy.conf is installed.
        #[arg(long, default_value = "/etc/nginx/snippets/wxgate-proxy.conf")]
        proxy_snippet: String,
    },
    /// Print the account's current access token, fetching it if needed
    /// (shared with running nodes through the configured store).
    Token,
    /// Act as the account's platform (WeChat, WeCom, Feishu, DingTalk, a
    /// 智能机器人): send a signed (and encrypted) message to a server and
    /// check the answer.
    Simulate(SimulateArgs),
    /// Perform the account's URL verification against a server (WeChat's
    /// GET, Feishu's challenge, DingTalk's encrypted check_url).
    VerifyUrl {
        /// Callback URL, e.g. http://127.0.0.1:8080/weixin
        #[arg(long)]
        url: String,
    },
    /// Work with the rules offline.
    Rules {
        /// What to do.
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Crypto helpers for debugging captured traffic (uses the account in the config).
    Crypto {
        /// What to do.
        #[command(subcommand)]
        command: CryptoCommand,
    },
}

/// The kind of account `wxgate init` sets up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InitKind {
    /// An Official Account (公众号).
    Official,
    /// A WeCom self-built app (企业微信自建应用).
    Wecom,
    /// WeChat Customer Service (微信客服).
    Kf,
}

/// `wxgate init`.
#[derive(Debug, Clone, Args)]
pub struct InitArgs {
    /// Where to write the config.
    #[arg(long, short, default_value = "wxgate.toml")]
    pub output: PathBuf,
    /// Overwrite the file when it exists.
    #[arg(long)]
    pub force: bool,
    /// Never ask; fail on what is missing (the default when stdin is not a terminal).
    #[arg(long)]
    pub no_input: bool,
    /// The account kind (asked when missing; default official).
    #[arg(long, value_enum)]
    pub kind: Option<InitKind>,
    /// The callback path (default /weixin, /kf for 微信客服).
    #[arg(long)]
    pub path: Option<String>,
    /// Message encryption of an Official Account (default safe; WeCom and 微信客服 are always safe).
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
    /// The callback Token (default: 32 random letters and digits).
    #[arg(long)]
    pub token: Option<String>,
    /// The EncodingAESKey (default: 43 random letters and digits).
    #[arg(long)]
    pub encoding_aes_key: Option<String>,
    /// The Official Account's AppID (needed in compatible and safe mode).
    #[arg(long)]
    pub app_id: Option<String>,
    /// The Official Account's AppSecret (optional: late answers).
    #[arg(long)]
    pub app_secret: Option<String>,
    /// The CorpID (WeCom and 微信客服).
    #[arg(long)]
    pub corp_id: Option<String>,
    /// The WeCom app's AgentId.
    #[arg(long)]
    pub agent_id: Option<i64>,
    /// The WeCom app's or 微信客服's Secret (required for 微信客服).
    #[arg(long)]
    pub corp_secret: Option<String>,
    /// Where wxgate listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// The public origin WeChat calls (for the URL to paste).
    #[arg(long, default_value = "https://wx.example.com")]
    pub public_url: String,
}

/// Encryption mode on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ModeArg {
    /// 明文
    Plain,
    /// 兼容
    Compatible,
    /// 安全
    Safe,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Mode {
        match m {
            ModeArg::Plain => Mode::Plain,
            ModeArg::Compatible => Mode::Compatible,
            ModeArg::Safe => Mode::Safe,
        }
    }
}

/// Who sends and who receives simulated messages.
#[derive(Debug, Args)]
pub struct PartyArgs {
    /// The sender's OpenID (Feishu: its open_id, DingTalk: its senderId,
    /// a 智能机器人: its userid).
    #[arg(long, default_value = "oWxgateSimulatorUser0000000")]
    pub from: String,
    /// The account's original id (DingTalk: the robot's chatbotUserId; a
    /// 智能机器人 without bot_id: its aibotid).
    #[arg(long, default_value = "gh_wxgate_simulator")]
    pub to: String,
}

/// `wxgate simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Callback URL, e.g. http://127.0.0.1:8080/weixin
    #[arg(long)]
    pub url: String,
    /// Encryption mode of an Official Account (default: the account's configured mode).
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
    /// How long to keep refreshing a 智能机器人's unfinished stream, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    pub wait: f64,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Send this recorded XML message instead of building one (WeChat kinds).
    #[arg(long)]
    pub xml: Option<PathBuf>,
    /// Sender and receiver.
    #[command(flatten)]
    pub parties: PartyArgs,
    /// The message to send.
    #[command(subcommand)]
    pub kind: Option<KindCommand>,
}

/// Message kinds, as WeChat sends them.
#[derive(Debug, Clone, Subcommand)]
pub enum KindCommand {
    /// A text message.
    Text {
        /// The text.
        content: String,
    },
    /// A picture.
    Image {
        /// Picture URL.
        #[arg(long, default_value = "http://mmbiz.qpic.cn/simulated.jpg")]
        pic_url: String,
    },
    /// A voice message.
    Voice {
        /// Speech recognition result.
        #[arg(long)]
        recognition: Option<String>,
    },
    /// A video.
    Video,
    /// A short video.
    Shortvideo,
    /// A location.
    Location {
        /// Latitude.
        #[arg(long, default_value_t = 23.134521, allow_negative_numbers = true)]
        lat: f64,
        /// Longitude.
        #[arg(long, default_value_t = 113.358803, allow_negative_numbers = true)]
        lng: f64,
        /// Place label.
        #[arg(long, default_value = "广州市天河区")]
        label: String,
    },
    /// A link.
    Link {
        /// Title.
        #[arg(long, default_value = "A link")]
        title: String,
        /// URL.
        #[arg(long, default_value = "https://example.com/")]
        url: String,
    },
    /// An event: subscribe `[KEY]`, unsubscribe, click KEY, view URL, scan KEY, location, …
    Event {
        /// Event name.
        name: String,
        /// EventKey (menu key, URL, qrscene_… scene).
        key: Option<String>,
    },
}

impl KindCommand {
    /// The simulator's message kind.
    pub fn to_kind(&self) -> Kind {
        match self.clone() {
            KindCommand::Text { content } => Kind::Text(content),
            KindCommand::Image { pic_url } => Kind::Image { pic_url },
            KindCommand::Voice { recognition } => Kind::Voice { recognition },
            KindCommand::Video => Kind::Video,
            KindCommand::Shortvideo => Kind::ShortVideo,
            KindCommand::Location { lat, lng, label } => Kind::Location { lat, lng, label },
            KindCommand::Link { title, url } => Kind::Link { title, url },
            KindCommand::Event { name, key } => Kind::event(&name, key),
        }
    }
}

/// `wxgate rules …`
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Evaluate the rules for a message and show the matching rule and reply.
    Test {
        /// Sender and receiver.
        #[command(flatten)]
        parties: PartyArgs,
        /// The message.
        #[command(subcommand)]
        kind: KindCommand,
    },
}

/// `wxgate crypto …`
#[derive(Debug, Subcommand)]
pub enum CryptoCommand {
    /// Encrypt a message (argument or stdin) into an `Encrypt` value.
    Encrypt {
        /// The plaintext (default: read stdin).
        message: Option<String>,
    },
    /// Decrypt an `Encrypt` value, or a whole body containing `<Encrypt>`.
    Decrypt {
        /// Base64 ciphertext or XML body (default: read stdin).
        input: Option<String>,
    },
    /// Compute `signature` (or `msg_signature` with --encrypt).
    Sign {
        /// Timestamp.
        #[arg(long)]
        timestamp: String,
        /// Nonce.
        #[arg(long)]
        nonce: String,
        /// The Encrypt value, for msg_signature.
        #[arg(long)]
        encrypt: Option<String>,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}

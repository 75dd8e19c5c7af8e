//! Parsing of `/invoke` commands (the request body) and of non-web-server-mode events.

/// What an `/invoke` request body asks the function to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    /// `echo:<text>`: reply with `<text>`.
    Echo(&'a str),
    /// `headers`: reply with the request headers.
    Headers,
    /// `env`: reply with the environment.
    Env,
    /// `whoami`: reply with the process uid and gid.
    Whoami,
    /// `crash`: exit with code 7 without replying.
    Crash,
    /// `abort`: SIGABRT without replying.
    Abort,
    /// `sleep:<ms>`: sleep, then reply.
    Sleep(u64),
    /// `fail`: reply 404 with `x-fc-status: 404` and an FC error body.
    Fail,
    /// `status:<code>`: reply with that status (200..=599).
    Status(u16),
    /// `log:<text>`: print `<text>` to stdout.
    Log(&'a str),
    /// `barrier:<dir>:<n>`: wait until `<dir>` holds `n` entries.
    Barrier { dir: &'a str, n: usize },
    /// `chat:<dir>:<n>`: print `<request id> before`, wait as `barrier` does, print
    /// `<request id> after` (requests told apart in a shared instance's log).
    Chat { dir: &'a str, n: usize },
    /// `spew:<lines>`: print that many 200-byte lines (a chatty function).
    Spew(u64),
    /// `size:<n>`: reply with `n` bytes of `x`.
    Size(u64),
    /// `read:<path>`: reply with the file's bytes, or 403 and the error if it cannot be read.
    Read(&'a str),
    /// `connect:<host:port>`: try a TCP connection; reply `connected` or `error: <reason>`.
    Connect(&'a str),
    /// `tcp:<host:port>`: connect, reply `got: <what the peer sent first>` or `error: <reason>`.
    Tcp(&'a str),
    /// `udp:<host:port>`: send `udp-probe`, reply `got: <the answer>` or `error: <reason>`.
    Udp(&'a str),
    /// `source:<host:port>`: reply the address this instance sends from to reach it (its own
    /// address; nothing is sent), or `error: <reason>`.
    Source(&'a str),
    /// `record:<path>`: append the request's `x-fc-request-id` and a newline to the file.
    Record(&'a str),
    /// `flaky:<dir>:<n>`: fail (`x-fc-status: 404`) the first `n` times a request id is seen,
    /// counting attempts in files under `<dir>`, then succeed.
    Flaky { dir: &'a str, n: usize },
    /// `hold:<dir>:<ms>`: put a marker in `<dir>`, count the markers there (the requests
    /// holding now, this one included), wait `ms`, remove the marker and reply
    /// `holding <count>`: the largest count replied is the most requests in flight at once.
    Hold { dir: &'a str, ms: u64 },
    /// `state`: check the memory `/initialize` built (`TESTFN_INIT_ALLOC_MB`), page by page;
    /// reply `pages=<n> intact=<true|false>`.
    State,
    /// `alloc:<mb>`: allocate and touch that many MiB, then reply.
    Alloc(u64),
    /// `pids`: reply with the pids visible in `/proc`.
    Pids,
    /// `probe:<spec>`: try something isolation must deny (see `isolation.rs`).
    Probe(&'a str),
    /// Anything else: echo the raw body.
    Raw,
}

/// Parses an `/invoke` body. Non-UTF-8 bodies and malformed arguments are `Command::Raw`.
pub fn parse(body: &[u8]) -> Command<'_> {
    let Ok(text) = std::str::from_utf8(body) else {
        return Command::Raw;
    };
    let text = text.trim_end_matches(['\r', '\n']);
    let (verb, arg) = match text.split_once(':') {
        Some((verb, arg)) => (verb, Some(arg)),
        None => (text, None),
    };
    let parsed = match (verb, arg) {
        ("echo", Some(t)) => Some(Command::Echo(t)),
        ("headers", None) => Some(Command::Headers),
        ("env", None) => Some(Command::Env),
        ("whoami", None) => Some(Command::Whoami),
        ("state", None) => Some(Command::State),
        ("crash", None) => Some(Command::Crash),
        ("abort", None) => Some(Command::Abort),
        ("fail", None) => Some(Command::Fail),
        ("sleep", Some(ms)) => number(ms).map(Command::Sleep),
        ("size", Some(n)) => number(n).map(Command::Size),
        ("status", Some(code)) => number(code)
            .and_then(|c| u16::try_from(c).ok())
            .filter(|c| (200..=599).contains(c))
            .map(Command::Status),
        ("log", Some(t)) => Some(Command::Log(t)),
        ("read", Some(path)) => Some(Command::Read(path)),
        ("connect", Some(addr)) => Some(Command::Connect(addr)),
        ("tcp", Some(addr)) => Some(Command::Tcp(addr)),
        ("udp", Some(addr)) => Some(Command::Udp(addr)),
        ("source", Some(addr)) => Some(Command::Source(addr)),
        ("record", Some(path)) => Some(Command::Record(path)),
        ("alloc", Some(mb)) => number(mb).map(Command::Alloc),
        ("pids", None) => Some(Command::Pids),
        ("probe", Some(spec)) => Some(Command::Probe(spec)),
        ("flaky", Some(rest)) => rest
            .rsplit_once(':')
            .and_then(|(dir, n)| number(n).map(|n| Command::Flaky { dir, n: n as usize })),
        ("hold", Some(rest)) => rest.rsplit_once(':').and_then(|(dir, ms)| {
            let ms = number(ms)?;
            (!dir.is_empty()).then_some(Command::Hold { dir, ms })
        }),
        ("barrier", Some(rest)) => rest.rsplit_once(':').and_then(|(dir, n)| {
            let n = usize::try_from(number(n)?).ok()?;
            (!dir.is_empty()).then_some(Command::Barrier { dir, n })
        }),
        ("chat", Some(rest)) => rest.rsplit_once(':').and_then(|(dir, n)| {
            let n = usize::try_from(number(n)?).ok()?;
            (!dir.is_empty()).then_some(Command::Chat { dir, n })
        }),
        ("spew", Some(n)) => number(n).map(Command::Spew),
        _ => None,
    };
    parsed.unwrap_or(Command::Raw)
}

/// A whole decimal number (digits only).
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The leading decimal number of `s` (digits, optionally after a `-`), ignoring what follows.
fn leading_number<T: std::str::FromStr>(s: &str) -> Option<T> {
    let digits_start = usize::from(s.starts_with('-'));
    let end = s[digits_start..]
        .find(|c: char| !c.is_ascii_digit())
        .map_or(s.len(), |i| i + digits_start);
    if end == digits_start {
        return None;
    }
    s[..end].parse().ok()
}

/// What a non-web-server-mode process does with `FC_CUSTOM_CONTAINER_EVENT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventAction {
    /// `exit:<n>`: exit with code n.
    Exit(i32),
    /// `signal`: abort (SIGABRT).
    Signal,
    /// `sleep:<ms>`: sleep, then exit 0.
    Sleep(u64),
    /// `stdout:<n>`: print n bytes of `x`, then exit 0.
    Stdout(u64),
    /// Anything else: exit 0.
    Done,
}

/// Parses an event by prefix; a prefix with no number after it is `EventAction::Done`.
pub fn parse_event(event: &str) -> EventAction {
    let parsed = if let Some(rest) = event.strip_prefix("exit:") {
        leading_number(rest).map(EventAction::Exit)
    } else if event.starts_with("signal") {
        Some(EventAction::Signal)
    } else if let Some(rest) = event.strip_prefix("sleep:") {
        leading_number(rest).map(EventAction::Sleep)
    } else if let Some(rest) = event.strip_prefix("stdout:") {
        leading_number(rest).map(EventAction::Stdout)
    } else {
        None
    };
    parsed.unwrap_or(EventAction::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_simple_commands_with_trailing_newline() {
        assert_eq!(parse(b"headers"), Command::Headers);
        assert_eq!(parse(b"env\n"), Command::Env);
        assert_eq!(parse(b"whoami\r\n"), Command::Whoami);
        assert_eq!(parse(b"crash"), Command::Crash);
        assert_eq!(parse(b"abort"), Command::Abort);
        assert_eq!(parse(b"fail"), Command::Fail);
    }

    #[test]
    fn parses_commands_with_arguments() {
        assert_eq!(parse(b"echo:hi: there\n"), Command::Echo("hi: there"));
        assert_eq!(parse(b"echo:"), Command::Echo(""));
        assert_eq!(parse(b"sleep:250"), Command::Sleep(250));
        assert_eq!(parse(b"size:1048576"), Command::Size(1_048_576));
        assert_eq!(parse(b"status:503"), Command::Status(503));
        assert_eq!(parse(b"log:hello world"), Command::Log("hello world"));
        assert_eq!(
            parse(b"chat:/tmp/a:2"),
            Command::Chat {
                dir: "/tmp/a",
                n: 2
            }
        );
        assert_eq!(parse(b"spew:10"), Command::Spew(10));
        assert_eq!(parse(b"tcp:10.0.0.1:80"), Command::Tcp("10.0.0.1:80"));
        assert_eq!(parse(b"udp:10.0.0.1:53"), Command::Udp("10.0.0.1:53"));
        assert_eq!(parse(b"source:10.0.0.1:9"), Command::Source("10.0.0.1:9"));
        assert_eq!(
            parse(b"barrier:/tmp/a:b:3"),
            Command::Barrier {
                dir: "/tmp/a:b",
                n: 3
            }
        );
    }

    #[test]
    fn malformed_or_unknown_commands_are_raw() {
        for body in [
            &b""[..],
            b"{\"a\":1}",
            b"sleep:abc",
            b"sleep:-1",
            b"size:",
            b"status:99",
            b"status:600",
            b"status:70000",
            b"barrier:/tmp",
            b"barrier::3",
            b"barrier:/tmp:x",
            b"headers:x",
            b"crash now",
            b"\xff\xfe",
        ] {
            assert_eq!(parse(body), Command::Raw, "{body:?}");
        }
    }

    #[test]
    fn parses_events() {
        assert_eq!(parse_event("exit:5"), EventAction::Exit(5));
        assert_eq!(parse_event("exit:12 and more"), EventAction::Exit(12));
        assert_eq!(parse_event("exit:-1"), EventAction::Exit(-1));
        assert_eq!(parse_event("exit:"), EventAction::Done);
        assert_eq!(parse_event("exit:-"), EventAction::Done);
        assert_eq!(parse_event("exit:99999999999"), EventAction::Done);
        assert_eq!(parse_event("signal"), EventAction::Signal);
        assert_eq!(parse_event("sleep:100\n"), EventAction::Sleep(100));
        assert_eq!(parse_event("stdout:10"), EventAction::Stdout(10));
        assert_eq!(parse_event(""), EventAction::Done);
        assert_eq!(parse_event("{\"k\":\"v\"}"), EventAction::Done);
    }
}

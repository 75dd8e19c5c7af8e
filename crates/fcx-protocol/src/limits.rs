//! Sizes and defaults FC documents (fc-protocol.md §6.4 and "fcx decisions").

/// Largest synchronous invocation payload (32 MB, FC's web functions page).
pub const SYNC_PAYLOAD_MAX: usize = 32 * 1024 * 1024;
/// Largest asynchronous invocation payload (128 KB).
pub const ASYNC_PAYLOAD_MAX: usize = 128 * 1024;
/// Largest CreateFunction / UpdateFunction body. FC takes bigger packages only through OSS,
/// which fcx does not have; 100 MB of JSON holds a zip of about 75 MB once base64 is undone.
pub const FUNCTION_BODY_MAX: usize = 100 * 1024 * 1024;
/// Largest total size a code package may unpack to (fcx decision; FC documents none for
/// packages uploaded inline). Checked against the sizes the zip declares and, by
/// decompressing, against what it really holds, so a zip bomb is refused at create.
pub const CODE_UNPACKED_MAX: u64 = 1024 * 1024 * 1024;
/// Most entries (files, directories, links) a code package may hold.
pub const CODE_ENTRIES_MAX: usize = 100_000;
/// How much of an invocation's log `x-fc-log-type: Tail` returns.
pub const LOG_TAIL_MAX: usize = 4 * 1024;
/// Largest stdout kept as the result of a non-web-server invocation.
pub const EVENT_STDOUT_MAX: usize = 6 * 1024 * 1024;
/// The kernel refuses one environment string longer than this (`MAX_ARG_STRLEN`, 32 pages),
/// counting `FC_CUSTOM_CONTAINER_EVENT=` and the terminating NUL.
pub const ENV_STRING_MAX: usize = 32 * 4096;
/// Largest event a non-web-server function can take in `FC_CUSTOM_CONTAINER_EVENT`.
pub const EVENT_ENV_PAYLOAD_MAX: usize = ENV_STRING_MAX - "FC_CUSTOM_CONTAINER_EVENT=".len() - 1;
/// Default time an instance has to start listening (FC: 120 s).
pub const DEFAULT_START_TIMEOUT_SECS: u64 = 120;

//! Faults a simulated device shows on demand, and their names for the CLI and
//! scenario files (`hang`, `slow-drip:64:50`, `huge:BYTES`, `error:TEXT`, …).
//!
//! Pure; the behaviour itself lives in `device.rs` and `server.rs`.

use std::str::FromStr;
use std::time::Duration;

use super::{Error, Result};

/// A misbehaviour a device shows on demand.
///
/// Connection-level faults (`AuthFailure`, `HostKeyChange`) apply to every connection;
/// the others apply to `/export` commands only, so the version probe still answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Every authentication attempt is rejected.
    AuthFailure,
    /// A new random host key on every connection.
    HostKeyChange,
    /// Accepts the exec request, then never sends anything and never closes.
    HangAfterExec,
    /// The export trickles out: `chunk` bytes every `every`.
    SlowDrip {
        /// Bytes per write.
        chunk: usize,
        /// Pause between writes.
        every: Duration,
    },
    /// Sends about half of the export, then drops the TCP connection without closing
    /// the SSH channel.
    DisconnectMidOutput,
    /// Streams a valid-looking export of at least `bytes` bytes (whole lines), generated
    /// on the fly.
    HugeOutput {
        /// Minimum size of the output.
        bytes: u64,
    },
    /// Random bytes that are not valid UTF-8.
    Garbage,
    /// Prints this RouterOS error text (plus CRLF) instead of the export, exit status 0.
    RouterOsError(String),
}

impl Fault {
    /// Default drip: 64 bytes every 50 ms.
    const DRIP: (usize, u64) = (64, 50);
    /// Default size of `huge`: 64 MiB.
    const HUGE_BYTES: u64 = 64 * 1024 * 1024;
    /// Default text of `error`.
    const ERROR_TEXT: &'static str = "bad command name export (line 1 column 2)";
}

impl FromStr for Fault {
    type Err = Error;

    /// Parses `auth-failure`, `host-key-change`, `hang`, `slow-drip[:CHUNK[:EVERY_MS]]`,
    /// `disconnect`, `huge[:BYTES]`, `garbage`, `error[:TEXT]` (long names such as
    /// `hang-after-exec`, `disconnect-mid-output`, `huge-output`, `routeros-error` too).
    fn from_str(input: &str) -> Result<Self> {
        let bad = |reason: &str| Error::Fault {
            input: input.to_owned(),
            reason: reason.to_owned(),
        };
        let (name, arg) = match input.split_once(':') {
            Some((name, arg)) => (name.trim(), Some(arg)),
            None => (input.trim(), None),
        };
        let no_arg = |fault: Fault| match arg {
            None => Ok(fault),
            Some(_) => Err(bad("this fault takes no parameter")),
        };
        match name.to_ascii_lowercase().replace('_', "-").as_str() {
            "auth-failure" | "auth" => no_arg(Fault::AuthFailure),
            "host-key-change" | "hostkey-change" => no_arg(Fault::HostKeyChange),
            "hang" | "hang-after-exec" => no_arg(Fault::HangAfterExec),
            "disconnect" | "disconnect-mid-output" => no_arg(Fault::DisconnectMidOutput),
            "garbage" => no_arg(Fault::Garbage),
            "slow-drip" | "drip" => parse_drip(arg).map_err(|r| bad(&r)),
            "huge" | "huge-output" => match arg {
                None => Ok(Fault::HugeOutput {
                    bytes: Fault::HUGE_BYTES,
                }),
                Some(a) => a
                    .trim()
                    .parse()
                    .map(|bytes| Fault::HugeOutput { bytes })
                    .map_err(|_| bad("expected huge:BYTES with BYTES a whole number")),
            },
            "error" | "routeros-error" => Ok(Fault::RouterOsError(
                arg.map_or(Fault::ERROR_TEXT.to_owned(), str::to_owned),
            )),
            _ => Err(bad(
                "expected one of auth-failure, host-key-change, hang, slow-drip[:CHUNK[:EVERY_MS]], \
                 disconnect, huge[:BYTES], garbage, error[:TEXT]",
            )),
        }
    }
}

/// Parses the parameters of `slow-drip[:CHUNK[:EVERY_MS]]`.
fn parse_drip(arg: Option<&str>) -> std::result::Result<Fault, String> {
    let (mut chunk, mut every_ms) = Fault::DRIP;
    if let Some(arg) = arg {
        let mut parts = arg.split(':');
        let usage = "expected slow-drip:CHUNK:EVERY_MS with whole numbers, CHUNK > 0";
        if let Some(c) = parts.next() {
            chunk = c.trim().parse().map_err(|_| usage.to_owned())?;
        }
        if let Some(e) = parts.next() {
            every_ms = e.trim().parse().map_err(|_| usage.to_owned())?;
        }
        if chunk == 0 || parts.next().is_some() {
            return Err(usage.to_owned());
        }
    }
    Ok(Fault::SlowDrip {
        chunk,
        every: Duration::from_millis(every_ms),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_names_parse_with_and_without_parameters() {
        let cases = [
            ("auth-failure", Fault::AuthFailure),
            ("host-key-change", Fault::HostKeyChange),
            ("hang", Fault::HangAfterExec),
            ("hang_after_exec", Fault::HangAfterExec),
            ("disconnect", Fault::DisconnectMidOutput),
            ("garbage", Fault::Garbage),
            ("huge:1000", Fault::HugeOutput { bytes: 1000 }),
            (
                "slow-drip:10:5",
                Fault::SlowDrip {
                    chunk: 10,
                    every: Duration::from_millis(5),
                },
            ),
            (
                "error:no such item (4)",
                Fault::RouterOsError("no such item (4)".to_owned()),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(input.parse::<Fault>().expect(input), expected, "{input}");
        }
    }

    #[test]
    fn fault_parse_rejects_unknown_names_and_bad_parameters() {
        for input in [
            "explode",
            "huge:lots",
            "slow-drip:0",
            "hang:5",
            "drip:1:2:3",
        ] {
            let err = input.parse::<Fault>().expect_err(input);
            assert!(matches!(err, Error::Fault { .. }), "{input}: {err}");
        }
    }
}

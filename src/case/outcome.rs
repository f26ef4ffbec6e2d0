//! Outcomes of tests: [`Outcome`] and [`TestError`] (a failure, from an assertion, or an error,
//! from `?`), and the assertion macros (`ensure!`, `ensure_eq!`, `ensure_ne!`, `fail!`) that make
//! failures. Values enter from test code; they leave as the outcome the hit runner reports.

use std::fmt;

use crate::result::ExcInfo;

/// The result of a test, of a set-up or of a tear-down.
pub type Outcome = Result<(), TestError>;

/// Why a hit did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestError {
    /// An assertion did not hold (counted as a failure).
    Failure(ExcInfo),
    /// Anything else went wrong (counted as an error).
    Error(ExcInfo),
}

impl TestError {
    /// A failure with `message`; `location` is where the assertion is (`at file:line:column`).
    pub fn failure(message: impl Into<String>, kind: &str, location: &str) -> Self {
        TestError::Failure(ExcInfo(
            message.into(),
            kind.to_owned(),
            location.to_owned(),
        ))
    }

    /// An error with `message`, for errors that are not Rust error values.
    pub fn error(message: impl Into<String>) -> Self {
        TestError::Error(ExcInfo(message.into(), "error".into(), String::new()))
    }

    /// `[message, kind, traceback]`.
    pub fn exc_info(&self) -> &ExcInfo {
        match self {
            TestError::Failure(e) | TestError::Error(e) => e,
        }
    }

    /// Whether this is a failure (rather than an error).
    pub fn is_failure(&self) -> bool {
        matches!(self, TestError::Failure(_))
    }
}

impl fmt::Display for TestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, e) = match self {
            TestError::Failure(e) => ("failure", e),
            TestError::Error(e) => ("error", e),
        };
        write!(f, "{what} ({}): {}", e.kind(), e.message())?;
        if !e.traceback().is_empty() {
            write!(f, "\n{}", e.traceback())?;
        }
        Ok(())
    }
}

/// `?` on any error value makes an *error* outcome: the message is the error and its sources,
/// each part once (a source whose text the message already holds is not repeated), the kind is
/// the error's type name. An error has no traceback: the message already says everything the
/// source chain does, and a report that printed the chain again would say it two more times.
impl<E: std::error::Error + Send + Sync + 'static> From<E> for TestError {
    fn from(e: E) -> Self {
        let mut message = e.to_string();
        let traceback = String::new();
        let mut source = e.source();
        while let Some(s) = source {
            let text = s.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = s.source();
        }
        let full = std::any::type_name::<E>();
        let kind = full
            .split('<')
            .next()
            .unwrap_or(full)
            .rsplit("::")
            .next()
            .unwrap_or(full);
        TestError::Error(ExcInfo(message, kind.to_owned(), traceback))
    }
}

/// Fails the test unless `cond` holds: `ensure!(res.status().is_success())`,
/// `ensure!(n > 2, "only {n} items")`.
#[macro_export]
macro_rules! ensure {
    ($cond:expr $(,)?) => {
        if !$cond {
            return ::core::result::Result::Err($crate::TestError::failure(
                concat!("condition failed: ", stringify!($cond)),
                "ensure",
                concat!("at ", file!(), ":", line!(), ":", column!()),
            ));
        }
    };
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return ::core::result::Result::Err($crate::TestError::failure(
                format!($($arg)+),
                "ensure",
                concat!("at ", file!(), ":", line!(), ":", column!()),
            ));
        }
    };
}

/// Fails the test unless both sides are equal: `ensure_eq!(res.status(), 200)`.
#[macro_export]
macro_rules! ensure_eq {
    ($left:expr, $right:expr $(,)?) => {
        match (&$left, &$right) {
            (l, r) => {
                if !(*l == *r) {
                    return ::core::result::Result::Err($crate::TestError::failure(
                        format!(
                            "{} == {} failed\n  left: {:?}\n right: {:?}",
                            stringify!($left), stringify!($right), l, r
                        ),
                        "ensure_eq",
                        concat!("at ", file!(), ":", line!(), ":", column!()),
                    ));
                }
            }
        }
    };
    ($left:expr, $right:expr, $($arg:tt)+) => {
        match (&$left, &$right) {
            (l, r) => {
                if !(*l == *r) {
                    return ::core::result::Result::Err($crate::TestError::failure(
                        format!("{}\n  left: {:?}\n right: {:?}", format!($($arg)+), l, r),
                        "ensure_eq",
                        concat!("at ", file!(), ":", line!(), ":", column!()),
                    ));
                }
            }
        }
    };
}

/// Fails the test if both sides are equal.
#[macro_export]
macro_rules! ensure_ne {
    ($left:expr, $right:expr $(,)?) => {
        match (&$left, &$right) {
            (l, r) => {
                if *l == *r {
                    return ::core::result::Result::Err($crate::TestError::failure(
                        format!(
                            "{} != {} failed\n  both: {:?}",
                            stringify!($left),
                            stringify!($right),
                            l
                        ),
                        "ensure_ne",
                        concat!("at ", file!(), ":", line!(), ":", column!()),
                    ));
                }
            }
        }
    };
}

/// Fails the test now: `fail!("unexpected body {body}")`.
#[macro_export]
macro_rules! fail {
    ($($arg:tt)+) => {
        return ::core::result::Result::Err($crate::TestError::failure(
            format!($($arg)+),
            "fail",
            concat!("at ", file!(), ":", line!(), ":", column!()),
        ))
    };
}

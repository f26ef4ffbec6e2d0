//! The process's one handler of interrupts. SIGINT (Ctrl-C) presses are counted and SIGTERM is
//! noted by one thread, installed on first use of [`interrupts`] (until then the signals keep
//! their default effect). Synchronous loops read the counts ([`Interrupts::presses`],
//! [`Interrupts::stop_requested`]) or a flag ([`stop_flag`]); async code waits
//! ([`Interrupts::wait`]). A second Ctrl-C ends the process at once (exit 130) once
//! [`Interrupts::quit_on_second_press`] is set.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// What the process was sent so far.
pub struct Interrupts {
    presses: AtomicUsize,
    terminated: AtomicBool,
    quit_on_second: AtomicBool,
    asked: AtomicBool,
    changed: tokio::sync::Notify,
    flags: Mutex<Vec<Arc<AtomicBool>>>,
}

static INTERRUPTS: OnceLock<Interrupts> = OnceLock::new();

/// The process's interrupts; the first call installs the handler.
pub fn interrupts() -> &'static Interrupts {
    let mut fresh = false;
    let i = INTERRUPTS.get_or_init(|| {
        fresh = true;
        Interrupts {
            presses: AtomicUsize::new(0),
            terminated: AtomicBool::new(false),
            quit_on_second: AtomicBool::new(false),
            asked: AtomicBool::new(false),
            changed: tokio::sync::Notify::new(),
            flags: Mutex::new(Vec::new()),
        }
    });
    if fresh {
        i.listen();
    }
    i
}

/// A flag set by the first SIGINT or SIGTERM (already set when one came before), for loops that
/// end cleanly when it is (the broker's, the agent's, the external runner's).
pub fn stop_flag() -> Arc<AtomicBool> {
    let i = interrupts();
    let flag = Arc::new(AtomicBool::new(i.stop_requested()));
    if let Ok(mut flags) = i.flags.lock() {
        flags.push(flag.clone());
    }
    // A signal between the first read and the registration.
    if i.stop_requested() {
        flag.store(true, Ordering::SeqCst);
    }
    flag
}

impl Interrupts {
    fn listen(&'static self) {
        let _ = std::thread::Builder::new()
            .name("loads-signals".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    use tokio::signal::unix::{SignalKind, signal};
                    let (Ok(mut int), Ok(mut term)) = (
                        signal(SignalKind::interrupt()),
                        signal(SignalKind::terminate()),
                    ) else {
                        return;
                    };
                    loop {
                        tokio::select! {
                            _ = int.recv() => {
                                let n = self.presses.fetch_add(1, Ordering::SeqCst) + 1;
                                if n >= 2 && self.quit_on_second.load(Ordering::SeqCst) {
                                    std::process::exit(130);
                                }
                            }
                            _ = term.recv() => self.terminated.store(true, Ordering::SeqCst),
                        }
                        self.tell();
                    }
                });
            });
    }

    fn tell(&self) {
        if let Ok(flags) = self.flags.lock() {
            for f in flags.iter() {
                f.store(true, Ordering::SeqCst);
            }
        }
        self.changed.notify_waiters();
    }

    /// Acts as one press of Ctrl-C, made by the program itself (the dashboard's stop button):
    /// whatever a first Ctrl-C does happens, never the second press's quit.
    pub fn interrupt(&self) {
        self.asked.store(true, Ordering::SeqCst);
        let _ = self
            .presses
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| Some(n.max(1)));
        self.tell();
    }

    /// Whether the program asked to stop ([`interrupt`](Self::interrupt)): a stop that needs
    /// no confirmation.
    pub fn asked_to_stop(&self) -> bool {
        self.asked.load(Ordering::SeqCst)
    }

    /// How many times SIGINT (Ctrl-C) came.
    pub fn presses(&self) -> usize {
        self.presses.load(Ordering::SeqCst)
    }

    /// Whether SIGTERM came.
    pub fn terminated(&self) -> bool {
        self.terminated.load(Ordering::SeqCst)
    }

    /// Whether SIGINT or SIGTERM came.
    pub fn stop_requested(&self) -> bool {
        self.presses() > 0 || self.terminated()
    }

    /// From now on a second Ctrl-C ends the process at once, with exit code 130.
    pub fn quit_on_second_press(&self) {
        self.quit_on_second.store(true, Ordering::SeqCst);
    }

    /// Waits until SIGINT or SIGTERM has come (at once when one already has).
    pub async fn wait(&self) {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.stop_requested() {
                return;
            }
            notified.await;
        }
    }
}

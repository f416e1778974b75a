//! A Playwright script under node (tests/browser/*.mjs) driving Debian's chromium, stepped by the
//! Rust test: the script prints one line per step reached and waits for `NEXT` on stdin.

use crate::repo_root;
use std::cell::RefCell;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long one step may take before the test fails.
const STEP: Duration = Duration::from_secs(60);

pub struct PageScript {
    child: Child,
    to_node: RefCell<Option<ChildStdin>>,
    lines: mpsc::Receiver<String>,
}

impl PageScript {
    /// Starts `node tests/browser/<script> <args…>` with playwright-core from node_modules.
    pub fn start<S: AsRef<std::ffi::OsStr>>(script: &str, args: &[S]) -> PageScript {
        let mut child = Command::new("node")
            .arg(repo_root().join("tests/browser").join(script))
            .args(args)
            .env(
                "PLAYWRIGHT_CORE",
                repo_root().join("node_modules/playwright-core"),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start node");
        let to_node = RefCell::new(child.stdin.take());
        let out = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        PageScript {
            child,
            to_node,
            lines,
        }
    }

    /// The script's next line, which must start with `prefix`; `context` is shown on failure.
    pub fn expect(&self, prefix: &str, context: impl FnOnce() -> String) -> String {
        let line = self
            .lines
            .recv_timeout(STEP)
            .unwrap_or_else(|_| panic!("the browser script never said {prefix}:\n{}", context()));
        assert!(line.starts_with(prefix), "expected {prefix}, got {line}");
        line
    }

    /// Lets the script go on to its next step.
    pub fn next(&self) {
        let mut to_node = self.to_node.borrow_mut();
        let to_node = to_node.as_mut().expect("stdin open until finish");
        writeln!(to_node, "NEXT").expect("write to the browser script");
    }

    /// Closes its stdin and checks it exited successfully.
    pub fn finish(mut self) {
        drop(self.to_node.get_mut().take());
        let status = self.child.wait().expect("wait for node");
        assert!(status.success(), "the browser script failed ({status})");
    }
}

impl Drop for PageScript {
    fn drop(&mut self) {
        if self.to_node.get_mut().is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

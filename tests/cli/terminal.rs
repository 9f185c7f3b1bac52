//! The live view, through a real pseudo-terminal: berth runs with its stdin, stdout and stderr on
//! a pty, everything it writes is fed to a terminal emulator (vt100), and the tests look at the
//! screen as a person would, and at the bytes where colours matter.

use std::fs::File;
use std::io::{Read, Write};
use std::num::NonZeroU16;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use berth::engine::runtime::ContainerRuntime as _;

use crate::common;
use crate::common::{busybox_project, Project};

/// A passing job, and a failing one whose last lines of log must be shown.
const PIPELINE: &str = "\
stages: [build, test]
ok:
  stage: build
  script: [echo building, sleep 1, echo built]
bad:
  stage: test
  script: [echo first words, echo 'the last words', exit 4]
";

/// What berth wrote to the pty, and how it ended.
struct Session {
    bytes: Vec<u8>,
    code: Option<i32>,
    /// The pty echoes typed keys again once berth is gone (the live view turns echo off).
    echo_after: bool,
    resized: Option<(usize, u16, u16)>,
}

impl Session {
    /// The screen at the end, as a terminal of this size (then of the resized size) shows it.
    fn screen(&self, rows: u16, cols: u16) -> vt100::Screen {
        let size = |n| NonZeroU16::new(n).expect("a screen has a size");
        let mut parser = vt100::Parser::new(size(rows), size(cols), 0);
        match self.resized {
            Some((at, rows, cols)) => {
                parser.process(&self.bytes[..at]);
                parser.set_size(size(rows), size(cols));
                parser.process(&self.bytes[at..]);
            }
            None => parser.process(&self.bytes),
        }
        parser.screen().clone()
    }

    /// Everything written, escape sequences removed (redraws included, so every state shows).
    fn text(&self) -> String {
        String::from_utf8_lossy(&strip_ansi_escapes::strip(&self.bytes)).into_owned()
    }

    fn raw(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// Open a pty of the given size; returns (master, slave).
fn open_pty(rows: u16, cols: u16) -> (OwnedFd, OwnedFd) {
    let mut master = -1;
    let mut slave = -1;
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty writes two fds we then own; the name and termios pointers may be null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both fds were just opened by openpty and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

/// Start `berth ARGS` on a fresh pty (its own session, the pty as controlling terminal).
fn spawn_on_pty(
    p: &Project,
    args: &[&str],
    env: &[(&str, &str)],
    rows: u16,
    cols: u16,
) -> (Child, File) {
    let (master, slave) = open_pty(rows, cols);
    let mut cmd = p.command(args);
    cmd.env("TERM", "xterm-256color");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let io = |fd: &OwnedFd| Stdio::from(fd.try_clone().expect("dup the pty"));
    cmd.stdin(io(&slave)).stdout(io(&slave)).stderr(io(&slave));
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().expect("start berth on the pty");
    drop(slave);
    (child, File::from(master))
}

/// berth running on a pty, and what it wrote so far (read by a thread, so berth never blocks).
struct PtyRun {
    child: Child,
    master: File,
    rx: mpsc::Receiver<Vec<u8>>,
    bytes: Vec<u8>,
    /// (bytes written before, rows, cols) of a resize, for replaying the screen.
    resized: Option<(usize, u16, u16)>,
}

impl PtyRun {
    fn start(p: &Project, args: &[&str], env: &[(&str, &str)], rows: u16, cols: u16) -> PtyRun {
        let (child, master) = spawn_on_pty(p, args, env, rows, cols);
        let mut reader = master.try_clone().expect("dup the pty master");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            // EIO once berth (the last holder of the slave side) is gone.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        PtyRun {
            child,
            master,
            rx,
            bytes: Vec::new(),
            resized: None,
        }
    }

    /// Take what arrives until nothing has for `quiet`.
    fn drain(&mut self, quiet: Duration) {
        while let Ok(chunk) = self.rx.recv_timeout(quiet) {
            self.bytes.extend_from_slice(&chunk);
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&strip_ansi_escapes::strip(&self.bytes)).into_owned()
    }

    /// Take what arrives during `time`.
    fn read_for(&mut self, time: Duration) {
        let start = Instant::now();
        while start.elapsed() < time {
            if let Ok(chunk) = self.rx.recv_timeout(Duration::from_millis(20)) {
                self.bytes.extend_from_slice(&chunk);
            }
        }
    }

    /// The screen as it is now.
    fn screen_now(&self, rows: u16, cols: u16) -> vt100::Screen {
        Session {
            bytes: self.bytes.clone(),
            code: None,
            echo_after: false,
            resized: self.resized,
        }
        .screen(rows, cols)
    }

    fn wait_for(&mut self, text: &str) {
        let start = Instant::now();
        while !self.text().contains(text) {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "never saw {text:?} in:\n{}",
                self.text()
            );
            self.drain(Duration::from_millis(50));
        }
    }

    fn type_keys(&mut self, keys: &[u8]) {
        self.master.write_all(keys).expect("type into the pty");
    }

    /// Resize the terminal as a window manager would. berth is stopped meanwhile so that
    /// nothing it drew for the old size is read as drawn for the new one.
    fn resize(&mut self, rows: u16, cols: u16) {
        let pid = self.child.id() as i32;
        // SAFETY: signals to our own child; ioctl on the master fd we own with a winsize.
        unsafe {
            assert_eq!(libc::kill(pid, libc::SIGSTOP), 0);
            self.drain(Duration::from_millis(300));
            self.resized = Some((self.bytes.len(), rows, cols));
            let size = libc::winsize {
                ws_row: rows,
                ws_col: cols,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            assert_eq!(
                libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &size),
                0
            );
            assert_eq!(libc::kill(pid, libc::SIGCONT), 0);
        }
    }

    /// Read until berth exits.
    fn finish(mut self) -> Session {
        let start = Instant::now();
        let code = loop {
            self.drain(Duration::from_millis(50));
            if let Some(status) = self.child.try_wait().expect("wait for berth") {
                break status.code();
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "berth did not finish; so far:\n{}",
                self.text()
            );
        };
        // What berth wrote just before exiting.
        self.drain(Duration::from_millis(300));
        // SAFETY: tcgetattr on the master fd we own, into a termios we own.
        let echo_after = unsafe {
            let mut settings: libc::termios = std::mem::zeroed();
            assert_eq!(libc::tcgetattr(self.master.as_raw_fd(), &mut settings), 0);
            settings.c_lflag & libc::ECHO != 0
        };
        Session {
            bytes: self.bytes,
            code,
            echo_after,
            resized: self.resized,
        }
    }
}

fn run_on_pty(p: &Project, env: &[(&str, &str)], rows: u16, cols: u16) -> Session {
    PtyRun::start(p, &["run", "-j", "1"], env, rows, cols).finish()
}

/// The screen row by row (vt100 joins rows that wrapped, and indicatif fills each row to the
/// edge, so its own `contents()` would run them together).
fn shown(screen: &vt100::Screen) -> String {
    let (_, cols) = screen.size();
    screen
        .rows(0, cols.into())
        .map(|r| r.trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

const SPINNER: &str = "⠁⠂⠄⡀⢀⠠⠐⠈⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏⠉⠚⠒⠲⠤";

/// The screen once berth is gone: no live line left, the cursor visible at the start of a line.
fn assert_left_sane(screen: &vt100::Screen, session: &Session) {
    let contents = shown(screen);
    assert!(
        !contents.chars().any(|c| SPINNER.contains(c)),
        "a spinner line was left on the screen:\n{contents}"
    );
    assert!(
        !contents.contains(" queued · "),
        "the overall line was left on the screen:\n{contents}"
    );
    assert!(!screen.hide_cursor(), "the cursor is hidden:\n{contents}");
    assert!(session.echo_after, "the terminal was left without echo");
    assert_eq!(
        screen.cursor_position().1,
        0,
        "the shell prompt would not start a line:\n{contents}"
    );
    assert!(
        !session.raw().contains("\u{1b}[?1049h"),
        "berth switched to the alternate screen"
    );
}

fn row_of(lines: &[&str], needle: &str) -> usize {
    lines
        .iter()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("`{needle}` not on the screen:\n{}", lines.join("\n")))
}

#[test]
fn live_view_shows_jobs_counts_and_a_failed_jobs_last_lines() {
    let p = busybox_project(PIPELINE);
    let (rows, cols) = (60, 100);
    let session = run_on_pty(&p, &[], rows, cols);
    let screen = session.screen(rows, cols);
    let contents = shown(&screen);
    assert_eq!(session.code, Some(1), "{contents}");

    // While it ran: a spinner line per running job with its stage, and the overall counts.
    let text = session.text();
    assert!(text.contains("ok   0s [build]"), "{text}");
    assert!(
        text.contains("0 done · 1 running · 1 queued · 0 failed"),
        "{text}"
    );
    assert!(
        text.contains("1 done · 1 running · 0 queued · 0 failed"),
        "{text}"
    );
    assert!(
        text.contains("2 done · 0 running · 0 queued · 1 failed"),
        "{text}"
    );
    assert!(
        text.contains("built"),
        "the latest log line was not shown: {text}"
    );

    // What stays: status marks, the failed job's last lines under its name, the summary.
    let lines: Vec<&str> = contents.lines().collect();
    let passed = row_of(&lines, "✔ ok passed in ");
    let failed = row_of(&lines, "✘ bad failed in ");
    assert!(lines[failed].ends_with(": exit code 4"), "{contents}");
    let first = row_of(&lines, "│ first words");
    let last = row_of(&lines, "│ the last words");
    assert!(
        passed < failed && failed < first && first < last,
        "{contents}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("│ building")),
        "a passing job's log was shown: {contents}"
    );
    assert!(row_of(&lines, "pipeline failed in") > last, "{contents}");
    assert_left_sane(&screen, &session);

    // Colours on a terminal (red for the failure), since NO_COLOR is not set.
    assert!(session.raw().contains("\u{1b}[31m✘"), "{:?}", session.raw());
}

#[test]
fn no_color_means_no_colour_escapes() {
    let p = busybox_project(PIPELINE);
    let session = run_on_pty(&p, &[("NO_COLOR", "1")], 60, 100);
    assert_eq!(session.code, Some(1));
    let raw = session.raw();
    let sgr = regex::Regex::new(r"\x1b\[[0-9;]*m").expect("regex");
    assert!(
        sgr.find(&raw).is_none(),
        "colour escape in: {:?}",
        sgr.find(&raw)
            .map(|m| &raw[m.start().saturating_sub(40)..m.end()])
    );
    // Still the live view, marks and all.
    let text = session.text();
    assert!(text.contains("✘ bad failed in"), "{text}");
    assert!(text.contains("queued · "), "{text}");
}

#[test]
fn narrow_terminal_keeps_one_line_per_bar() {
    let p = busybox_project(
        "\
long:
  script:
    - echo 'a log line far wider than the terminal it is shown on, so it must be cut to fit' && sleep 1
",
    );
    let (rows, cols) = (30, 40);
    let session = run_on_pty(&p, &[], rows, cols);
    let screen = session.screen(rows, cols);
    assert_eq!(session.code, Some(0), "{}", shown(&screen));
    // Each redraw of the job's line is cut to the width: it never reaches the overall line's row.
    let text = session.text();
    assert!(text.contains("a log line far wider"), "{text}");
    assert!(
        !text.contains("cut to fit"),
        "the live line was not cut to the terminal's width: {text}"
    );
    assert!(shown(&screen).contains("✔ long passed in"));
    assert_left_sane(&screen, &session);
}

#[test]
fn ctrl_c_leaves_the_terminal_clean() {
    let p = busybox_project(
        "\
waiting:
  script: ['echo ready && sleep 300']
",
    );
    let (rows, cols) = (40, 100);
    let mut run = PtyRun::start(&p, &["run"], &[], rows, cols);
    run.wait_for("ready");
    // ^C typed at the terminal: the tty sends SIGINT to berth's process group.
    run.type_keys(b"\x03");
    let session = run.finish();
    let screen = session.screen(rows, cols);
    let contents = shown(&screen);
    assert_eq!(session.code, Some(130), "{contents}");
    assert!(contents.contains("interrupted"), "{contents}");
    assert!(contents.contains("■ waiting cancelled"), "{contents}");
    assert_left_sane(&screen, &session);
    let left = p.leftovers();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn a_resize_is_followed_without_leftovers() {
    let p = busybox_project(
        "\
long:
  script:
    - echo 'ready, a line that fits the wide terminal but not the narrow one at all' && sleep 3
",
    );
    let (rows, wide, narrow) = (30, 100, 40);
    let mut run = PtyRun::start(&p, &["run"], &[], rows, wide);
    run.wait_for("narrow one at all");
    run.resize(rows, narrow);
    // A few redraws at the new width, then the screen as a person sees it.
    run.read_for(Duration::from_millis(800));
    let live = shown(&run.screen_now(rows, wide));
    let lines: Vec<&str> = live.lines().filter(|l| !l.is_empty()).collect();
    let n = lines.len();
    assert!(n >= 3, "{live}");
    // The last two rows are the live lines, each cut to 40 columns; nothing else is left over.
    assert!(lines[n - 2].contains(" long ") && lines[n - 2].contains("ready, a line"));
    assert!(
        !live.contains("narrow one"),
        "not cut to the new width:\n{live}"
    );
    assert!(lines[n - 1].contains("1 running · 0 queued"), "{live}");
    assert!(!lines[n - 1].contains("0 failed"), "not cut:\n{live}");
    assert!(
        lines[..n - 2]
            .iter()
            .all(|l| l.starts_with("berth: ") || l.is_empty()),
        "something was left above the live lines:\n{live}"
    );
    for l in &lines {
        assert!(l.chars().count() <= usize::from(narrow), "{l:?}");
    }

    let session = run.finish();
    assert_eq!(session.code, Some(0), "{}", session.text());
    let screen = session.screen(rows, wide);
    assert!(
        shown(&screen).contains("✔ long passed in"),
        "{}",
        shown(&screen)
    );
    assert_left_sane(&screen, &session);
}

#[test]
fn verbose_streams_every_log_above_the_live_lines() {
    let p = busybox_project(PIPELINE);
    let (rows, cols) = (60, 100);
    let session = PtyRun::start(&p, &["run", "-j", "1", "-v"], &[], rows, cols).finish();
    assert_eq!(session.code, Some(1));
    let screen = session.screen(rows, cols);
    let contents = shown(&screen);
    let lines: Vec<&str> = contents.lines().collect();
    let building = row_of(&lines, "[ok] building");
    let passed = row_of(&lines, "✔ ok passed in ");
    let last = row_of(&lines, "[bad] the last words");
    let failed = row_of(&lines, "✘ bad failed in ");
    assert!(
        building < passed && passed < last && last < failed,
        "{contents}"
    );
    // Already shown in full: no tail under the failed job.
    assert!(!contents.contains("│ "), "{contents}");
    assert_left_sane(&screen, &session);
}

#[test]
fn an_image_build_shows_its_steps() {
    let p = busybox_project("built:\n  image: {build: ctx}\n  script: [cat /made-by]\n");
    // Content unique to this test run, so the image is really built (and then removed).
    p.write(
        "ctx/Dockerfile",
        &format!(
            "FROM {}\nRUN echo {} > /made-by\nRUN sleep 1\n",
            common::BUSYBOX,
            p.path().display()
        ),
    );
    let (rows, cols) = (40, 120);
    let session = PtyRun::start(&p, &["run"], &[], rows, cols).finish();
    let text = session.text();
    let tag = text
        .split_whitespace()
        .find(|w| w.starts_with("berth-build/ctx:"))
        .map(|w| w.trim_end_matches(':').to_string());
    if let Some(tag) = &tag {
        common::block_on(async {
            let engine = berth::docker::Engine::connect()
                .await
                .expect("Docker engine");
            engine
                .remove_image(tag)
                .await
                .expect("remove the built image");
        });
    }
    assert_eq!(session.code, Some(0), "{text}");
    let tag = tag.expect("the built image's tag");
    // While it built: the image's line with each step.
    for step in ["Step 1/", "Step 2/4 : RUN echo", "Step 3/4 : RUN sleep 1"] {
        assert!(text.contains(step), "no {step:?} in:\n{text}");
    }
    let screen = session.screen(rows, cols);
    let contents = shown(&screen);
    assert!(
        contents.contains(&format!("berth: image {tag}: building "))
            && contents.contains(" done in "),
        "{contents}"
    );
    assert!(contents.contains("✔ built passed in"), "{contents}");
    assert_left_sane(&screen, &session);
}

#[test]
fn a_second_ctrl_c_exits_at_once_and_still_leaves_the_terminal_sane() {
    // A service makes stopping take a while (its network goes too), so that the second ^C
    // usually arrives while berth is still stopping.
    let p = busybox_project(
        "\
waiting:
  services: [berth-test/httpd:latest]
  script: ['echo ready && sleep 300']
",
    );
    let (rows, cols) = (40, 100);
    let mut run = PtyRun::start(&p, &["run"], &[], rows, cols);
    run.wait_for("ready");
    run.type_keys(b"\x03");
    run.wait_for("berth: interrupted; stopping");
    run.type_keys(b"\x03");
    let session = run.finish();
    // berth left without cleaning up; prune removes what it left (Docker may still be removing
    // the container berth was stopping, so ask until it is gone).
    let deadline = Instant::now() + Duration::from_secs(30);
    let left = loop {
        p.berth(&["prune"]).expect_code(0);
        let left = p.leftovers();
        if left.is_empty() || Instant::now() > deadline {
            break left;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(left.is_empty(), "left behind: {left:?}");
    let screen = session.screen(rows, cols);
    let contents = shown(&screen);
    assert_eq!(session.code, Some(130), "{contents}");
    // When the first stop finished before the second key arrived, there was nothing left to
    // cut short; otherwise berth says it left at once.
    if !contents.contains("pipeline interrupted in") {
        assert!(contents.contains("interrupted again"), "{contents}");
    }
    assert_left_sane(&screen, &session);
}

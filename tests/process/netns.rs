//! Network namespaces for the kernel-level tests: hosts, veth links,
//! routers with nftables rules, all removed when dropped. Needs root and
//! iproute2's `ip` (nftables' `nft` for the rules); [`can_make_namespaces`]
//! tells whether this process has them, so a test can say it is skipped.

// Each test binary that links `process` uses a part of this, or none.
#![allow(dead_code)]

use std::process::Command;

use super::{node_binary, Node};

/// Runs `ip ARGS`, panicking with the command when it fails.
pub fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("run ip");
    assert!(status.success(), "ip {}", args.join(" "));
}

/// Whether this process may make namespaces: root, with `ip` at hand.
pub fn can_make_namespaces() -> bool {
    // Unique within the process too: tests run in parallel threads.
    static PROBES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let probe = format!("ptprobe{}x{n}", std::process::id());
    let made = Command::new("ip")
        .args(["netns", "add", &probe])
        .output()
        .is_ok_and(|o| o.status.success());
    if made {
        let _ = Command::new("ip").args(["netns", "del", &probe]).status();
    }
    made
}

/// Whether `nft` runs here.
pub fn has_nft() -> bool {
    Command::new("nft")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A set of namespaces named `<prefix><name>`, deleted when dropped.
pub struct Namespaces {
    prefix: String,
    made: Vec<String>,
}

impl Namespaces {
    /// `prefix` must be unique to the test run (the process id in it).
    pub fn new(prefix: String) -> Namespaces {
        Namespaces {
            prefix,
            made: Vec::new(),
        }
    }

    /// Adds namespace `name` with its loopback up.
    pub fn add(&mut self, name: &str) {
        let ns = self.ns(name);
        ip(&["netns", "add", &ns]);
        self.made.push(ns.clone());
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
    }

    /// The full name of namespace `name`.
    pub fn ns(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Links namespaces `a` and `b` by a veth pair whose ends are named
    /// `a_end` and `b_end` (at most 15 bytes) with addresses `a_addr` and
    /// `b_addr` (CIDR).
    pub fn link(
        &self,
        (a, a_end, a_addr): (&str, &str, &str),
        (b, b_end, b_addr): (&str, &str, &str),
    ) {
        ip(&["link", "add", a_end, "type", "veth", "peer", "name", b_end]);
        for (ns, end, addr) in [(a, a_end, a_addr), (b, b_end, b_addr)] {
            let ns = self.ns(ns);
            ip(&["link", "set", end, "netns", &ns]);
            ip(&["-n", &ns, "addr", "add", addr, "dev", end]);
            ip(&["-n", &ns, "link", "set", end, "up"]);
        }
    }

    /// Runs `program ARGS` inside namespace `name`, panicking when it fails.
    pub fn exec(&self, name: &str, program: &str, args: &[&str]) {
        let status = Command::new("ip")
            .args(["netns", "exec", &self.ns(name), program])
            .args(args)
            .status()
            .expect("run ip netns exec");
        assert!(status.success(), "in {name}: {program} {}", args.join(" "));
    }

    /// Sets `end` of namespace `name` up or down.
    pub fn set_link(&self, name: &str, end: &str, up: bool) {
        let state = if up { "up" } else { "down" };
        ip(&["-n", &self.ns(name), "link", "set", end, state]);
    }

    /// Starts the node program in namespace `name` with `--json` and
    /// `args`, and waits for its first listen address.
    pub fn start_node(&self, name: &str, node: &str, args: &[&str]) -> Node {
        let mut command = self.command(name, node_binary());
        command.arg("--json").args(args);
        Node::start_command(node, command)
    }

    /// A command that runs `program` inside namespace `name`.
    pub fn command(&self, name: &str, program: &std::path::Path) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.ns(name)]).arg(program);
        command
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.made {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

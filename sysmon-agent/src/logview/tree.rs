//! `--tree`: process trees rebuilt from ProcessGuid / ParentProcessGuid, each process with
//! its command line and, in log order, its children and its network, file, raw-read,
//! process-access and exit events.
//!
//! A parent that never had its own event 1 in the input (it started before the log did) is
//! built from the child's Parent* fields and marked as such.

use super::colour::Palette;
use super::event::Event;
use super::text::to_display_string;
use std::collections::HashMap;
use std::io::{self, Write};

enum Item {
    Child(usize),
    /// Event id (for colour), time, text.
    Activity(u32, String, String),
}

#[derive(Default)]
struct Proc {
    guid: String,
    pid: String,
    image: String,
    command_line: String,
    user: String,
    /// `ContainerName` (else `ContainerId`) of its ProcessCreate, when in a container.
    container: String,
    started: Option<String>,
    parent: Option<usize>,
    items: Vec<Item>,
}

/// The fields that name the process an event belongs to.
#[derive(Clone, Copy)]
struct Actor {
    guid: &'static [u8],
    pid: &'static [u8],
    image: &'static [u8],
    user: &'static [u8],
}

const PROCESS: Actor = Actor {
    guid: b"ProcessGuid",
    pid: b"ProcessId",
    image: b"Image",
    user: b"User",
};
/// Event 10 names its actor with a Source prefix.
const SOURCE: Actor = Actor {
    guid: b"SourceProcessGUID",
    pid: b"SourceProcessId",
    image: b"SourceImage",
    user: b"SourceUser",
};

#[derive(Default)]
pub struct Tree {
    index: HashMap<String, usize>,
    procs: Vec<Proc>,
    scratch: Vec<u8>,
}

impl Tree {
    pub fn add(&mut self, e: &Event) {
        match e.id {
            1 => self.add_create(e),
            3 => {
                let arrow = if self.get(e, b"Initiated") == "false" {
                    "<-"
                } else {
                    "->"
                };
                let text = format!(
                    "network {} {} {arrow} {}{}",
                    self.get(e, b"Protocol"),
                    endpoint(&self.get(e, b"SourceIp"), &self.get(e, b"SourcePort")),
                    endpoint(
                        &self.get(e, b"DestinationIp"),
                        &self.get(e, b"DestinationPort")
                    ),
                    self.rule(e),
                );
                self.activity(e, PROCESS, text);
            }
            5 => self.activity(e, PROCESS, "exited".into()),
            9 => {
                let text = format!("raw read {}{}", self.get(e, b"Device"), self.rule(e));
                self.activity(e, PROCESS, text);
            }
            10 => {
                let text = format!(
                    "access {} [{}] {}{}",
                    self.get(e, b"TargetImage"),
                    self.get(e, b"TargetProcessId"),
                    self.get(e, b"GrantedAccess"),
                    self.rule(e),
                );
                self.activity(e, SOURCE, text);
            }
            11 => {
                let text = format!(
                    "file create {}{}",
                    self.get(e, b"TargetFilename"),
                    self.rule(e)
                );
                self.activity(e, PROCESS, text);
            }
            23 => {
                let text = format!(
                    "file delete {}{}",
                    self.get(e, b"TargetFilename"),
                    self.rule(e)
                );
                self.activity(e, PROCESS, text);
            }
            // Service state, config change and errors belong to no process.
            _ => {}
        }
    }

    fn add_create(&mut self, e: &Event) {
        let Some(me) = self.node(e, b"ProcessGuid") else {
            return;
        };
        let time = self.get(e, b"UtcTime");
        let (pid, image, cmd, user) = (
            self.get(e, b"ProcessId"),
            self.get(e, b"Image"),
            self.get(e, b"CommandLine"),
            self.get(e, b"User"),
        );
        let container = match (self.get(e, b"ContainerName"), self.get(e, b"ContainerId")) {
            (n, _) if !n.is_empty() && n != "-" => n,
            (_, id) if id != "-" => id,
            _ => String::new(),
        };
        let p = &mut self.procs[me];
        (p.pid, p.image, p.command_line, p.user) = (pid, image, cmd, user);
        p.container = container;
        p.started = Some(time);
        if p.parent.is_some() {
            return;
        }
        let Some(parent) = self.node(e, b"ParentProcessGuid") else {
            return;
        };
        if parent == me {
            return;
        }
        if self.procs[parent].started.is_none() && self.procs[parent].image.is_empty() {
            let (pid, image, cmd, user) = (
                self.get(e, b"ParentProcessId"),
                self.get(e, b"ParentImage"),
                self.get(e, b"ParentCommandLine"),
                self.get(e, b"ParentUser"),
            );
            let p = &mut self.procs[parent];
            (p.pid, p.image, p.command_line, p.user) = (pid, image, cmd, user);
        }
        self.procs[me].parent = Some(parent);
        self.procs[parent].items.push(Item::Child(me));
    }

    fn activity(&mut self, e: &Event, actor: Actor, text: String) {
        let Some(me) = self.node(e, actor.guid) else {
            return;
        };
        if self.procs[me].image.is_empty() {
            let image = self.get(e, actor.image);
            let pid = self.get(e, actor.pid);
            let user = self.get(e, actor.user);
            let p = &mut self.procs[me];
            (p.image, p.pid, p.user) = (image, pid, user);
        }
        let time = self.get(e, b"UtcTime");
        self.procs[me].items.push(Item::Activity(e.id, time, text));
    }

    /// The process named by `field`, created on first sight; `None` for no/empty GUIDs.
    fn node(&mut self, e: &Event, field: &[u8]) -> Option<usize> {
        let guid = self.get(e, field);
        if guid.is_empty() || guid == "-" || guid.trim_matches(['{', '}', '0', '-']).is_empty() {
            return None;
        }
        if let Some(&i) = self.index.get(&guid) {
            return Some(i);
        }
        let i = self.procs.len();
        self.procs.push(Proc {
            guid: guid.clone(),
            ..Proc::default()
        });
        self.index.insert(guid, i);
        Some(i)
    }

    fn get(&mut self, e: &Event, field: &[u8]) -> String {
        e.field(field)
            .map(|raw| to_display_string(raw, &mut self.scratch))
            .unwrap_or_default()
    }

    fn rule(&mut self, e: &Event) -> String {
        match self.get(e, b"RuleName") {
            r if r.is_empty() || r == "-" => String::new(),
            r => format!(" [{r}]"),
        }
    }

    pub fn write(&self, w: &mut impl Write, p: Palette) -> io::Result<()> {
        let mut shown = vec![false; self.procs.len()];
        let roots = (0..self.procs.len()).filter(|&i| self.procs[i].parent.is_none());
        for root in roots {
            self.write_from(w, p, root, &mut shown)?;
        }
        // Only a parent cycle (a corrupt log) leaves processes unshown.
        for i in 0..self.procs.len() {
            if !shown[i] {
                self.write_from(w, p, i, &mut shown)?;
            }
        }
        Ok(())
    }

    /// Depth-first with an explicit stack, so a long chain of processes cannot overflow
    /// the call stack. Each process's items print in log order, a child's subtree at the
    /// place where the child started.
    fn write_from(
        &self,
        w: &mut impl Write,
        p: Palette,
        root: usize,
        shown: &mut [bool],
    ) -> io::Result<()> {
        shown[root] = true;
        self.write_proc(w, p, root, "")?;
        // (process, prefix of its item lines, next item)
        let mut stack = vec![(root, String::new(), 0)];
        while let Some((i, prefix, next)) = stack.last_mut() {
            let items = &self.procs[*i].items;
            let Some(item) = items.get(*next) else {
                stack.pop();
                continue;
            };
            *next += 1;
            let (branch, cont) = if *next == items.len() {
                ("└─ ", "   ")
            } else {
                ("├─ ", "│  ")
            };
            let lead = format!("{prefix}{branch}");
            match item {
                Item::Activity(id, time, text) => {
                    let (dim, colour, reset) = (p.name(), p.header(*id), p.reset());
                    writeln!(w, "{lead}{dim}{time}{reset} {colour}{text}{reset}")?;
                }
                Item::Child(c) => {
                    if std::mem::replace(&mut shown[*c], true) {
                        continue;
                    }
                    let child_prefix = format!("{prefix}{cont}");
                    self.write_proc(w, p, *c, &lead)?;
                    stack.push((*c, child_prefix, 0));
                }
            }
        }
        Ok(())
    }

    fn write_proc(&self, w: &mut impl Write, p: Palette, i: usize, lead: &str) -> io::Result<()> {
        let proc_ = &self.procs[i];
        write!(
            w,
            "{lead}{}{}{}",
            p.header(1),
            or_dash(&proc_.image),
            p.reset()
        )?;
        write!(w, " [{}]", or_dash(&proc_.pid))?;
        if !proc_.command_line.is_empty() {
            write!(w, " {}", proc_.command_line)?;
        }
        write!(w, "  {}{}", p.name(), proc_.guid)?;
        if !proc_.user.is_empty() {
            write!(w, " user {}", proc_.user)?;
        }
        if !proc_.container.is_empty() {
            write!(w, " container {}", proc_.container)?;
        }
        match &proc_.started {
            Some(t) => write!(w, " started {t}")?,
            None => write!(w, " (started before the log)")?,
        }
        writeln!(w, "{}", p.reset())
    }
}

/// `ip:port`, with IPv6 addresses in brackets.
fn endpoint(ip: &str, port: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() { "-" } else { s }
}

#[cfg(test)]
mod tests {
    use super::super::event::Parser;
    use super::*;

    fn create(guid: u32, parent: u32) -> String {
        format!(
            "<Event><System><EventID>1</EventID><EventRecordID>{guid}</EventRecordID></System><EventData>\
             <Data Name=\"UtcTime\">t{guid}</Data><Data Name=\"ProcessGuid\">{{g{guid}}}</Data>\
             <Data Name=\"ProcessId\">{guid}</Data><Data Name=\"Image\">/bin/p{guid}</Data>\
             <Data Name=\"CommandLine\">p{guid}</Data><Data Name=\"ParentProcessGuid\">{{g{parent}}}</Data>\
             <Data Name=\"ParentProcessId\">{parent}</Data><Data Name=\"ParentImage\">/bin/p{parent}</Data>\
             </EventData></Event>"
        )
    }

    fn render(lines: &[String]) -> String {
        let mut tree = Tree::default();
        let mut parser = Parser::default();
        for l in lines {
            tree.add(&parser.parse(l.as_bytes()).unwrap());
        }
        let mut out = Vec::new();
        tree.write(&mut out, Palette::new(false)).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// A process in a container shows its name, else its id; a host process (`-`) nothing.
    #[test]
    fn container_processes_name_their_container() {
        let with = |guid: u32, name: &str, id: &str| {
            create(guid, 0).replace(
                "</EventData>",
                &format!(
                    "<Data Name=\"ContainerId\">{id}</Data>\
                     <Data Name=\"ContainerName\">{name}</Data></EventData>"
                ),
            )
        };
        let out = render(&[
            with(1, "web", "4a3b"),
            with(2, "-", "c-1"),
            with(3, "-", "-"),
        ]);
        let want = "/bin/p0 [0]  {g0} (started before the log)\n\
                    ├─ /bin/p1 [1] p1  {g1} container web started t1\n\
                    ├─ /bin/p2 [2] p2  {g2} container c-1 started t2\n\
                    └─ /bin/p3 [3] p3  {g3} started t3\n";
        assert_eq!(out, want);
    }

    #[test]
    fn deep_chain_does_not_overflow() {
        let lines: Vec<String> = (1..3_000).map(|i| create(i, i - 1)).collect();
        let out = render(&lines);
        assert_eq!(out.lines().count(), 3_000);
        assert!(out.starts_with("/bin/p0 [0]  {g0} (started before the log)\n"));
    }

    #[test]
    fn parent_cycle_is_still_shown_once() {
        // A corrupt log: 1's parent is 2 and 2's parent is 1; neither is a root.
        let out = render(&[create(1, 2), create(2, 1)]);
        assert_eq!(out.matches("/bin/p1 [1] p1").count(), 1, "{out}");
        assert_eq!(out.matches("/bin/p2 [2] p2").count(), 1, "{out}");
    }

    #[test]
    fn activity_and_children_in_log_order() {
        let net = "<Event><System><EventID>3</EventID><EventRecordID>9</EventRecordID></System><EventData>\
                   <Data Name=\"UtcTime\">t9</Data><Data Name=\"ProcessGuid\">{g1}</Data>\
                   <Data Name=\"Protocol\">tcp</Data><Data Name=\"Initiated\">false</Data>\
                   <Data Name=\"SourceIp\">::1</Data><Data Name=\"SourcePort\">22</Data>\
                   <Data Name=\"DestinationIp\">10.0.0.1</Data><Data Name=\"DestinationPort\">5000</Data>\
                   </EventData></Event>";
        let out = render(&[create(1, 0), net.to_string(), create(2, 1)]);
        let want = "/bin/p0 [0]  {g0} (started before the log)\n\
                    └─ /bin/p1 [1] p1  {g1} started t1\n   \
                    ├─ t9 network tcp [::1]:22 <- 10.0.0.1:5000\n   \
                    └─ /bin/p2 [2] p2  {g2} started t2\n";
        assert_eq!(out, want);
    }
}

//! [`Link`]: uberpool's connections to one Redis deployment — a single server, or the masters
//! of a Redis Cluster — and the routing of commands to them.
//!
//! Every command uberpool sends names keys of one slot (the keys of one shard, or of the queue
//! itself), so routing is a lookup: slot → master. [`Link::round`] sends a batch of commands as
//! one pipeline per node, all nodes written before any is read, so a batch costs one round
//! trip however many nodes it touches. A `MOVED` reply updates the slot's master and the
//! command is sent there; an `ASK` reply sends `ASKING` and the command to the node named, once;
//! after either, the slot map is read again (`CLUSTER SLOTS`). A failed read or write drops
//! that node's connection: the next round dials again.
//!
//! Whether the deployment is a cluster is asked, not configured: the first node reached
//! answers `CLUSTER SLOTS`, or says cluster support is disabled.

use std::collections::HashMap;
use std::time::Duration;

use redis::{Cmd, Connection, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, Value};

use super::error::Error;
use super::reply::{self, Redirect};
use super::slot::SLOTS;

/// Redirections one command may follow in a round before the cluster is deemed unsettled.
const MAX_REDIRECTS: usize = 5;

/// Connect and IO timeouts of a link.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timeouts {
    pub(crate) connect: Duration,
    pub(crate) io: Duration,
}

struct Node {
    addr: String,
    info: ConnectionInfo,
    conn: Option<Connection>,
}

impl Node {
    fn new(addr: String, info: ConnectionInfo) -> Node {
        Node {
            addr,
            info,
            conn: None,
        }
    }

    /// The node's connection, dialled if need be.
    fn conn(&mut self, timeouts: Timeouts) -> Result<&mut Connection, Error> {
        if self.conn.is_none() {
            let connection = redis::Client::open(self.info.clone())
                .and_then(|client| client.get_connection_with_timeout(timeouts.connect))
                .and_then(|conn| {
                    conn.set_read_timeout(Some(timeouts.io))?;
                    conn.set_write_timeout(Some(timeouts.io))?;
                    Ok(conn)
                })
                .map_err(|source| Error::Connection {
                    addr: self.addr.clone(),
                    source,
                })?;
            self.conn = Some(connection);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| Error::Unavailable("no connection".into()))
    }

    fn fail(&mut self, source: redis::RedisError) -> Error {
        self.conn = None;
        Error::Connection {
            addr: self.addr.clone(),
            source,
        }
    }

    /// Sends `packed` (any number of commands) and reads `replies` replies.
    fn exchange(
        &mut self,
        timeouts: Timeouts,
        packed: &[u8],
        replies: usize,
    ) -> Result<Vec<Value>, Error> {
        let conn = self.conn(timeouts)?;
        if let Err(error) = conn.send_packed_command(packed) {
            return Err(self.fail(error));
        }
        self.receive(replies)
    }

    fn receive(&mut self, replies: usize) -> Result<Vec<Value>, Error> {
        let mut out = Vec::with_capacity(replies);
        for _ in 0..replies {
            let Some(conn) = self.conn.as_mut() else {
                return Err(Error::Unavailable(format!(
                    "{}: connection lost",
                    self.addr
                )));
            };
            match conn.recv_response() {
                Ok(value) => out.push(value),
                Err(error) => return Err(self.fail(error)),
            }
        }
        Ok(out)
    }
}

/// The connections to a deployment, and where each slot lives.
pub(crate) struct Link {
    seeds: Vec<ConnectionInfo>,
    timeouts: Timeouts,
    nodes: Vec<Node>,
    /// Cluster mode: the node index serving each slot (`usize::MAX`: not known). Empty for a
    /// single server, whose one node is `nodes[0]`.
    slots: Vec<usize>,
    /// A redirection was followed: read the slot map again after this round.
    stale: bool,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("cluster", &self.is_cluster())
            .field(
                "nodes",
                &self
                    .nodes
                    .iter()
                    .map(|n| n.addr.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn addr_text(info: &ConnectionInfo) -> String {
    match info.addr() {
        ConnectionAddr::Tcp(host, port) => format!("{host}:{port}"),
        other => other.to_string(),
    }
}

impl Link {
    /// Connects to the first reachable of `urls` (`redis://[user:password@]host:port[/db]`)
    /// and learns whether it is a cluster.
    pub(crate) fn connect(urls: &[String], timeouts: Timeouts) -> Result<Link, Error> {
        if urls.is_empty() {
            return Err(Error::Config("no Redis URL given".into()));
        }
        let mut seeds = Vec::with_capacity(urls.len());
        for url in urls {
            let text = if url.contains("://") {
                url.clone()
            } else {
                format!("redis://{url}")
            };
            let info = text
                .as_str()
                .into_connection_info()
                .map_err(|e| Error::Config(format!("Redis URL {url:?}: {e}")))?;
            seeds.push(info);
        }
        let mut link = Link {
            seeds,
            timeouts,
            nodes: Vec::new(),
            slots: Vec::new(),
            stale: false,
        };
        link.discover()?;
        Ok(link)
    }

    /// `true` when the deployment is a Redis Cluster.
    pub(crate) fn is_cluster(&self) -> bool {
        !self.slots.is_empty()
    }

    /// The addresses of the nodes known, for logs.
    pub(crate) fn describe(&self) -> String {
        let addrs: Vec<&str> = self.nodes.iter().map(|n| n.addr.as_str()).collect();
        if self.is_cluster() {
            format!("redis cluster {}", addrs.join(","))
        } else {
            format!("redis {}", addrs.join(","))
        }
    }

    /// The master serving `slot`, `host:port` (for logs and tests).
    pub(crate) fn node_of(&self, slot: u16) -> Option<&str> {
        let index = self.node_index(slot)?;
        self.nodes.get(index).map(|n| n.addr.as_str())
    }

    fn node_index(&self, slot: u16) -> Option<usize> {
        if self.slots.is_empty() {
            return (!self.nodes.is_empty()).then_some(0);
        }
        self.slots
            .get(usize::from(slot))
            .copied()
            .filter(|&i| i != usize::MAX)
    }

    /// Reads the topology again from any node that answers (after a failure).
    pub(crate) fn rediscover(&mut self) -> Result<(), Error> {
        self.discover()
    }

    /// Asks the known nodes, then the seeds, for `CLUSTER SLOTS` until one answers.
    fn discover(&mut self) -> Result<(), Error> {
        let mut candidates: Vec<ConnectionInfo> =
            self.nodes.iter().map(|n| n.info.clone()).collect();
        candidates.extend(self.seeds.iter().cloned());
        let mut last_error = None;
        for info in candidates {
            let mut node = Node::new(addr_text(&info), info);
            let mut slots = redis::cmd("CLUSTER");
            slots.arg("SLOTS");
            match node.exchange(self.timeouts, &slots.get_packed_command(), 1) {
                Ok(mut replies) => {
                    let value = replies.pop().unwrap_or(Value::Nil);
                    match self.adopt(node, &value) {
                        Ok(()) => return Ok(()),
                        Err(error) => last_error = Some(error),
                    }
                }
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| Error::Config("no Redis URL given".into())))
    }

    /// Takes `node`'s answer to `CLUSTER SLOTS` as the topology.
    fn adopt(&mut self, node: Node, value: &Value) -> Result<(), Error> {
        if let Value::ServerError(error) = value {
            let detail = error.details().unwrap_or_default();
            if detail.contains("cluster support disabled") {
                // A single server: it is the one node.
                self.nodes = vec![node];
                self.slots.clear();
                return Ok(());
            }
            return Err(Error::Unavailable(format!(
                "{} answered CLUSTER SLOTS with {} {detail}",
                node.addr,
                error.code()
            )));
        }
        let ranges = reply::cluster_slots(value).map_err(|e| Error::reply("CLUSTER SLOTS", e))?;
        if ranges.is_empty() {
            return Err(Error::Unavailable(format!(
                "{}: the cluster serves no slot yet",
                node.addr
            )));
        }
        let asked_host = match node.info.addr() {
            ConnectionAddr::Tcp(host, _) => host.clone(),
            _ => String::new(),
        };
        // Keep the connections of nodes that stay.
        let mut old: HashMap<String, Node> =
            self.nodes.drain(..).map(|n| (n.addr.clone(), n)).collect();
        old.entry(node.addr.clone()).or_insert(node);
        let mut slots = vec![usize::MAX; usize::from(SLOTS)];
        let mut index_of: HashMap<String, usize> = HashMap::new();
        for range in ranges {
            let host = if range.host.is_empty() {
                asked_host.clone()
            } else {
                range.host
            };
            let addr = format!("{host}:{}", range.port);
            let index = match index_of.get(&addr) {
                Some(&i) => i,
                None => {
                    let node = old.remove(&addr).unwrap_or_else(|| {
                        Node::new(addr.clone(), self.info_for(&host, range.port))
                    });
                    self.nodes.push(node);
                    index_of.insert(addr, self.nodes.len() - 1);
                    self.nodes.len() - 1
                }
            };
            slots[usize::from(range.start)..=usize::from(range.end)].fill(index);
        }
        self.slots = slots;
        Ok(())
    }

    /// Connection settings for a node the cluster named: the first seed's, at its address.
    fn info_for(&self, host: &str, port: u16) -> ConnectionInfo {
        let base = self.seeds.first().cloned().unwrap_or_else(|| {
            "redis://127.0.0.1/"
                .into_connection_info()
                .expect("a constant URL parses")
        });
        base.set_addr(ConnectionAddr::Tcp(host.to_owned(), port))
    }

    /// The node index for `addr` (named by a redirection), added when new.
    fn node_for_addr(&mut self, addr: &str) -> usize {
        if let Some(i) = self.nodes.iter().position(|n| n.addr == addr) {
            return i;
        }
        let (host, port) = addr
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
            .unwrap_or_else(|| (addr.to_owned(), 6379));
        let info = self.info_for(&host, port);
        self.nodes.push(Node::new(addr.to_owned(), info));
        self.nodes.len() - 1
    }

    /// Sends `commands` (each with the slot of its keys) as one pipeline per node, all written
    /// before any is read, and returns their replies in order. Error replies stay values for
    /// the caller to read, except redirections, which are followed.
    ///
    /// `read_timeout`, when given, replaces the IO timeout for this round's reads (a blocking
    /// read needs its block time plus a margin).
    pub(crate) fn round(
        &mut self,
        commands: &[(u16, Cmd)],
        read_timeout: Option<Duration>,
    ) -> Result<Vec<Value>, Error> {
        if commands.is_empty() {
            return Ok(Vec::new());
        }
        // Group by node, keeping each node's commands in order.
        let mut by_node: Vec<(usize, Vec<usize>, Vec<u8>)> = Vec::new();
        for (i, (slot, cmd)) in commands.iter().enumerate() {
            let node = self.node_index(*slot).ok_or_else(|| {
                self.stale = true;
                Error::Unavailable(format!("no node serves slot {slot}"))
            })?;
            let at = match by_node.iter().position(|(n, _, _)| *n == node) {
                Some(at) => at,
                None => {
                    by_node.push((node, Vec::new(), Vec::new()));
                    by_node.len() - 1
                }
            };
            by_node[at].1.push(i);
            cmd.write_packed_command(&mut by_node[at].2);
        }
        let timeouts = self.timeouts;
        for (node, _, packed) in &by_node {
            let node = &mut self.nodes[*node];
            let conn = node.conn(timeouts)?;
            if let Some(timeout) = read_timeout {
                let result = conn.set_read_timeout(Some(timeout.max(timeouts.io)));
                if let Err(error) = result {
                    return Err(node.fail(error));
                }
            }
            let conn = node.conn(timeouts)?;
            if let Err(error) = conn.send_packed_command(packed) {
                return Err(node.fail(error));
            }
        }
        let mut replies = vec![Value::Nil; commands.len()];
        let mut first_error = None;
        for (node, indexes, _) in &by_node {
            let node = &mut self.nodes[*node];
            match node.receive(indexes.len()) {
                Ok(values) => {
                    for (&i, value) in indexes.iter().zip(values) {
                        replies[i] = value;
                    }
                }
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
            if read_timeout.is_some()
                && let Some(conn) = node.conn.as_ref()
                && let Err(error) = conn.set_read_timeout(Some(timeouts.io))
            {
                first_error.get_or_insert(node.fail(error));
            }
        }
        if let Some(error) = first_error {
            return Err(error);
        }
        for (i, (_, cmd)) in commands.iter().enumerate() {
            let mut hops = 0;
            while let Some(redirect) = redirect_of(&replies[i]) {
                hops += 1;
                if hops > MAX_REDIRECTS {
                    return Err(Error::Unavailable(format!(
                        "a command was redirected more than {MAX_REDIRECTS} times"
                    )));
                }
                self.stale = true;
                replies[i] = self.follow(redirect, cmd)?;
            }
        }
        if self.stale && self.is_cluster() {
            // Best effort: a failure leaves the map as the redirections updated it.
            if self.discover().is_ok() {
                self.stale = false;
            }
        }
        Ok(replies)
    }

    /// Sends `cmd` where `redirect` says.
    fn follow(&mut self, redirect: Redirect, cmd: &Cmd) -> Result<Value, Error> {
        let timeouts = self.timeouts;
        match redirect {
            Redirect::Moved { slot, addr } => {
                let node = self.node_for_addr(&addr);
                if let Some(entry) = self.slots.get_mut(usize::from(slot)) {
                    *entry = node;
                }
                let mut replies =
                    self.nodes[node].exchange(timeouts, &cmd.get_packed_command(), 1)?;
                Ok(replies.pop().unwrap_or(Value::Nil))
            }
            Redirect::Ask { addr } => {
                let node = self.node_for_addr(&addr);
                let mut packed = redis::cmd("ASKING").get_packed_command();
                cmd.write_packed_command(&mut packed);
                let mut replies = self.nodes[node].exchange(timeouts, &packed, 2)?;
                Ok(replies.pop().unwrap_or(Value::Nil))
            }
        }
    }

    /// Sends one command to the node of `slot`.
    pub(crate) fn query(&mut self, slot: u16, cmd: Cmd) -> Result<Value, Error> {
        let mut replies = self.round(&[(slot, cmd)], None)?;
        Ok(replies.pop().unwrap_or(Value::Nil))
    }

    /// Drops every connection (they are dialled again on use).
    pub(crate) fn disconnect(&mut self) {
        for node in &mut self.nodes {
            node.conn = None;
        }
    }
}

/// The redirection an error reply asks for, if it is one.
fn redirect_of(value: &Value) -> Option<Redirect> {
    match value {
        Value::ServerError(error) => reply::redirect(error.code(), error.details().unwrap_or("")),
        _ => None,
    }
}

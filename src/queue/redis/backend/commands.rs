//! The commands a [`RedisBackend`] sends — settlements, reads, claims, probes, heartbeats and
//! upkeep, each addressed to its slot — and what their replies say.

use std::time::{Duration, Instant};

use redis::{Cmd, Value};

use super::{MOVE_EVERY, MOVE_LIMIT, Purpose, RedisBackend, TRIM_EVERY};
use crate::queue::redis::error::Error;
use crate::queue::redis::keys::{ShardKeys, parse_job_id};
use crate::queue::redis::queue::{eval, is_transient, server_error};
use crate::queue::redis::reply;
use crate::queue::redis::scripts;
use crate::queue::redis::shards::{assign, shares};
use crate::queue::{Settle, Settled, Settlement};

impl RedisBackend {
    pub(super) fn heartbeat_cmd(&self, mode: &str) -> (u16, Cmd) {
        let ttl = self.lease.as_millis().to_string();
        (
            self.opened.keys.slot,
            eval(
                scripts::HEARTBEAT,
                &[&self.opened.keys.members],
                &[self.consumer.as_bytes(), ttl.as_bytes(), mode.as_bytes()],
            ),
        )
    }

    /// Sends a heartbeat on its own and takes the shard split it returns.
    pub(super) fn heartbeat(&mut self, mode: &str) -> Result<(), Error> {
        let (slot, cmd) = self.heartbeat_cmd(mode);
        let value = self.link.query(slot, cmd)?;
        self.take_members(&value)
    }

    pub(super) fn take_members(&mut self, value: &Value) -> Result<(), Error> {
        if let Value::ServerError(error) = value {
            return Err(server_error("the heartbeat script", error));
        }
        let members =
            reply::strings(value).map_err(|e| self.confused("the heartbeat script", e))?;
        let owned = assign(&members, &self.consumer, self.shard_count());
        if owned != self.owned {
            tracing::debug!(consumer = %self.consumer, members = members.len(), ?owned, "shards re-balanced");
            self.rotate = 0;
        }
        self.owned = owned;
        self.members = members.len();
        self.next_heartbeat = Instant::now() + (self.lease / 4).max(Duration::from_millis(25));
        Ok(())
    }

    /// A reply that does not answer its command: the connections are dropped.
    pub(super) fn confused(&mut self, command: &'static str, detail: String) -> Error {
        self.link.disconnect();
        Error::reply(command, detail)
    }

    /// The command carrying `settlement` out, or why it cannot be.
    pub(super) fn settlement_cmd(&self, settlement: &Settlement) -> Result<(u16, Cmd), String> {
        let text = settlement.job.to_string();
        let Some((index, entry)) = parse_job_id(&text) else {
            return Err(format!("{text} is not a Redis queue job id"));
        };
        let Some(shard) = self.shard(index) else {
            return Err(format!("{text}: the queue has no shard {index}"));
        };
        let group = self.queue.group_name().as_bytes();
        let me = self.consumer.as_bytes();
        let cmd = match &settlement.action {
            Settle::Ack => {
                let mut cmd = redis::cmd("XACK");
                cmd.arg(&shard.stream).arg(group).arg(entry);
                cmd
            }
            Settle::Retry { delay } => {
                let ms = delay.as_millis().min(u128::from(u64::MAX)).to_string();
                eval(
                    scripts::RETRY,
                    &[&shard.stream, &shard.delayed],
                    &[group, me, entry.as_bytes(), ms.as_bytes()],
                )
            }
            Settle::DeadLetter { reason } => eval(
                scripts::DEAD_LETTER,
                &[&shard.stream, &shard.dead],
                &[group, me, entry.as_bytes(), reason.as_bytes()],
            ),
            Settle::ExtendLease => eval(
                scripts::EXTEND,
                &[&shard.stream],
                &[group, me, entry.as_bytes()],
            ),
        };
        Ok((shard.slot, cmd))
    }

    pub(super) fn read_cmd(&self, shard: &ShardKeys, count: usize, block: Option<Duration>) -> Cmd {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(self.queue.group_name())
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(count);
        if let Some(block) = block {
            cmd.arg("BLOCK").arg(block.as_millis().max(1) as u64);
        }
        cmd.arg("STREAMS").arg(&shard.stream).arg(">");
        cmd
    }

    pub(super) fn claim_cmd(&self, shard: &ShardKeys, count: usize) -> Cmd {
        let cursor = self.cursors.get(&shard.index).map_or("0-0", String::as_str);
        let idle = self.lease.as_millis().to_string();
        let count = count.to_string();
        eval(
            scripts::CLAIM,
            &[&shard.stream],
            &[
                self.queue.group_name().as_bytes(),
                self.consumer.as_bytes(),
                idle.as_bytes(),
                cursor.as_bytes(),
                count.as_bytes(),
            ],
        )
    }

    pub(super) fn probe_cmd(&self, shard: &ShardKeys, claims: bool) -> Cmd {
        let idle = if claims {
            self.lease.as_millis().to_string()
        } else {
            String::new()
        };
        eval(
            scripts::PROBE,
            &[&shard.stream],
            &[self.queue.group_name().as_bytes(), idle.as_bytes()],
        )
    }

    /// What a settlement's reply says.
    pub(super) fn settled(&mut self, action: &Settle, value: &Value) -> Result<Settled, Error> {
        let command = match action {
            Settle::Ack => "XACK",
            Settle::Retry { .. } => "the retry script",
            Settle::DeadLetter { .. } => "the dead-letter script",
            Settle::ExtendLease => "the lease script",
        };
        match value {
            Value::Int(0) => Ok(Settled::Gone),
            Value::Int(_) => Ok(Settled::Applied),
            Value::ServerError(error) if error.code() == "NOGROUP" => Ok(Settled::Gone),
            Value::ServerError(error) if is_transient(error.code()) => {
                Err(server_error(command, error))
            }
            Value::ServerError(error) => {
                Ok(Settled::Failed(server_error(command, error).to_string()))
            }
            other => Err(self.confused(command, reply::describe(other))),
        }
    }

    /// The upkeep due now, per shard read: moving due retries, trimming, pruning.
    pub(super) fn upkeep(
        &mut self,
        now: Instant,
        commands: &mut Vec<(u16, Cmd)>,
        purposes: &mut Vec<Purpose>,
    ) {
        let move_due = now >= self.next_move;
        let trim_due = now >= self.next_trim;
        if move_due {
            self.next_move = now + MOVE_EVERY;
        }
        if trim_due {
            self.next_trim = now + TRIM_EVERY;
        }
        let limit = MOVE_LIMIT.to_string();
        let group = self.queue.group_name().as_bytes();
        let idle = (self.lease * 2).as_millis().to_string();
        for &index in &self.owned {
            let Some(shard) = self.shard(index) else {
                continue;
            };
            if move_due {
                commands.push((
                    shard.slot,
                    eval(
                        scripts::MOVE_DUE,
                        &[&shard.delayed, &shard.stream],
                        &[limit.as_bytes()],
                    ),
                ));
                purposes.push(Purpose::Upkeep);
            }
            if trim_due {
                commands.push((shard.slot, eval(scripts::TRIM, &[&shard.stream], &[])));
                purposes.push(Purpose::Upkeep);
                commands.push((
                    shard.slot,
                    eval(scripts::PRUNE, &[&shard.stream], &[group, idle.as_bytes()]),
                ));
                purposes.push(Purpose::Upkeep);
            }
        }
    }

    /// Reads of `budget` entries shared among the shards this consumer reads.
    pub(super) fn reads(
        &mut self,
        budget: usize,
        commands: &mut Vec<(u16, Cmd)>,
        purposes: &mut Vec<Purpose>,
    ) {
        let plan = shares(&self.owned, budget, self.rotate);
        self.rotate = self.rotate.wrapping_add(1);
        for (index, count) in plan {
            if let Some(shard) = self.shard(index) {
                commands.push((shard.slot, self.read_cmd(shard, count, None)));
                purposes.push(Purpose::Read(index, count));
            }
        }
    }
}

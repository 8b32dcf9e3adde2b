//! IEEE 802.1D (1998) spanning tree, as NetBSD's bridgestp.c runs it: a
//! pure state machine. It owns no thread, clock or socket: whoever drives
//! it passes the time ([`Stp::poll`]), hands it the BPDUs that arrive
//! ([`Stp::input`]) and sends those it queues ([`Stp::take_output`]).
//! Tests drive it with a fake clock.
//!
//! Times are kept as on the wire, in 1/256 of a second. Timers advance by
//! ticks of [`TICK`] (NetBSD ticks once a second; a quarter second keeps
//! the same arithmetic and makes expiry four times as precise). A timer
//! started between two ticks makes up for the part of a tick gone, so it
//! expires at the first tick at or after its time, never before: a port
//! listens and learns at least the forward delay each, as 802.1D wants
//! (NetBSD's may be up to a second short).
//!
//! Two departures from NetBSD, both toward 802.1D: the bridge id sent in
//! a configuration BPDU is ours (NetBSD sends the root's, see
//! [`super::bpdu`]), and the topology change timer runs for max age +
//! forward delay (NetBSD never sets `sc_topology_change_time`).

use super::bpdu::{BpduRepr, ConfigBpdu};
use crate::ioctl::Mac;
use std::time::{Duration, Instant};

/// How often the timers advance.
pub const TICK: Duration = Duration::from_millis(250);
/// What one tick adds to a timer, in 1/256 s.
const TICK_VAL: i32 = 64;
/// `BSTP_MESSAGE_AGE_INCR`
const MESSAGE_AGE_INCR: u32 = 256;
/// `BSTP_DEFAULT_HOLD_TIME`: at most one configuration BPDU a second on a
/// port.
const HOLD_TIME: u16 = 256;

/// A port's state (`BSTP_IFSTATE_*`, with NetBSD's numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum PortState {
    Disabled = 0,
    Listening = 1,
    Learning = 2,
    Forwarding = 3,
    Blocking = 4,
}

impl PortState {
    /// As brconfig prints it (`stpstates[]`).
    pub fn name(self) -> &'static str {
        match self {
            PortState::Disabled => "disabled",
            PortState::Listening => "listening",
            PortState::Learning => "learning",
            PortState::Forwarding => "forwarding",
            PortState::Blocking => "blocking",
        }
    }

    pub fn from_u8(v: u8) -> PortState {
        match v {
            1 => PortState::Listening,
            2 => PortState::Learning,
            3 => PortState::Forwarding,
            4 => PortState::Blocking,
            _ => PortState::Disabled,
        }
    }

    /// Addresses are learned from frames received in this state.
    pub fn learns(self) -> bool {
        matches!(self, PortState::Learning | PortState::Forwarding)
    }
}

/// `struct bridge_timer`: counts up from a start value, in 1/256 s.
/// Started between two ticks, it starts lower by the part of a tick
/// already gone (`phase`), so that it never expires early: at the first
/// tick at or after its due time.
#[derive(Clone, Copy, Debug, Default)]
struct Timer {
    active: bool,
    value: i32,
}

impl Timer {
    fn start(&mut self, v: u16, phase: i32) {
        *self = Timer {
            active: true,
            value: i32::from(v) - phase,
        };
    }

    fn stop(&mut self) {
        *self = Timer::default();
    }

    /// Advance one tick; true (and stopped) when it reaches `limit`.
    fn expired(&mut self, limit: impl Into<i32>) -> bool {
        if !self.active {
            return false;
        }
        self.value += TICK_VAL;
        if self.value >= limit.into() {
            self.stop();
            return true;
        }
        false
    }
}

/// A member taking part in the spanning tree, as configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortConf {
    pub ifindex: u32,
    pub mac: Mac,
    pub priority: u8,
    pub path_cost: u32,
}

/// A port's spanning tree state (the STP part of `struct bridge_iflist`).
#[derive(Clone, Debug)]
struct Port {
    conf: PortConf,
    port_id: u16,
    state: PortState,
    /// The member is up (`IFF_UP`, link not down): `bstp_ifupdstatus`.
    link: bool,
    designated_root: u64,
    designated_cost: u32,
    designated_bridge: u64,
    designated_port: u16,
    tc_ack: bool,
    config_pending: bool,
    change_detection: bool,
    message_age: Timer,
    forward_delay: Timer,
    hold: Timer,
}

/// The bridge's configured parameters: priority and times in seconds, as
/// brconfig sets them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BridgeConf {
    pub priority: u16,
    pub hello_time: u8,
    pub max_age: u8,
    pub forward_delay: u8,
}

/// Protocol counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StpCounters {
    pub config_in: u64,
    pub tcn_in: u64,
    pub config_out: u64,
    pub tcn_out: u64,
}

/// One bridge's spanning tree (the STP part of `struct bridge_softc`).
#[derive(Debug)]
pub struct Stp {
    conf: BridgeConf,
    ports: Vec<Port>,
    bridge_id: u64,
    designated_root: u64,
    root_path_cost: u32,
    /// Index into `ports`.
    root_port: Option<usize>,
    /// The times in use: the root's, learned from its BPDUs.
    max_age: u16,
    hello_time: u16,
    forward_delay: u16,
    tc_detected: bool,
    tc: bool,
    hello_timer: Timer,
    tcn_timer: Timer,
    tc_timer: Timer,
    /// Running (the bridge is up and has ports): when the next tick is due.
    next_tick: Option<Instant>,
    /// How much of the current tick had passed (1/256 s) at the call
    /// being handled: what a timer started now makes up for.
    phase: i32,
    out: Vec<(u32, BpduRepr)>,
    pub counters: StpCounters,
}

fn secs(s: u8) -> u16 {
    u16::from(s) << 8
}

impl Stp {
    pub fn new(conf: BridgeConf) -> Stp {
        Stp {
            conf,
            ports: Vec::new(),
            bridge_id: 0,
            designated_root: 0,
            root_path_cost: 0,
            root_port: None,
            max_age: secs(conf.max_age),
            hello_time: secs(conf.hello_time),
            forward_delay: secs(conf.forward_delay),
            tc_detected: false,
            tc: false,
            hello_timer: Timer::default(),
            tcn_timer: Timer::default(),
            tc_timer: Timer::default(),
            next_tick: None,
            phase: 0,
            out: Vec::new(),
            counters: StpCounters::default(),
        }
    }

    // ---- What the driver and brconfig see.

    pub fn is_running(&self) -> bool {
        self.next_tick.is_some()
    }

    /// A port's state; `Disabled` for one that is not a port.
    pub fn state(&self, ifindex: u32) -> PortState {
        self.port(ifindex)
            .map_or(PortState::Disabled, |i| self.ports[i].state)
    }

    pub fn bridge_id(&self) -> u64 {
        self.bridge_id
    }

    pub fn root_id(&self) -> u64 {
        self.designated_root
    }

    pub fn root_path_cost(&self) -> u32 {
        self.root_path_cost
    }

    /// The interface index of the root port.
    pub fn root_port(&self) -> Option<u32> {
        self.root_port.map(|i| self.ports[i].conf.ifindex)
    }

    /// A topology change is under way: addresses age in forward delay.
    pub fn topology_change(&self) -> bool {
        self.tc
    }

    /// The forward delay in use, in whole seconds (for fast aging).
    pub fn forward_delay_secs(&self) -> u32 {
        u32::from(self.forward_delay).div_ceil(256)
    }

    /// When [`Stp::poll`] next has work.
    pub fn poll_at(&self) -> Option<Instant> {
        self.next_tick
    }

    /// The BPDUs to send: (interface index, BPDU).
    pub fn take_output(&mut self) -> Vec<(u32, BpduRepr)> {
        std::mem::take(&mut self.out)
    }

    // ---- What changes it.

    /// New bridge parameters: the tree starts over, as NetBSD's ioctls
    /// call `bstp_initialization`.
    pub fn set_conf(&mut self, conf: BridgeConf, now: Instant) {
        if conf != self.conf {
            self.conf = conf;
            self.restart(now);
        }
    }

    /// The members that take part, with their parameters and whether each
    /// is up. A changed set or parameter starts the tree over; a changed
    /// link enables or disables that port alone.
    pub fn set_ports(&mut self, ports: &[(PortConf, bool)], now: Instant) {
        self.at(now);
        let same = ports.len() == self.ports.len()
            && ports
                .iter()
                .zip(&self.ports)
                .all(|((c, _), p)| *c == p.conf);
        if !same {
            self.ports = ports
                .iter()
                .map(|(c, link)| Port {
                    conf: *c,
                    port_id: 0,
                    state: PortState::Disabled,
                    link: *link,
                    designated_root: 0,
                    designated_cost: 0,
                    designated_bridge: 0,
                    designated_port: 0,
                    tc_ack: false,
                    config_pending: false,
                    change_detection: true,
                    message_age: Timer::default(),
                    forward_delay: Timer::default(),
                    hold: Timer::default(),
                })
                .collect();
            self.restart(now);
            return;
        }
        for (i, (_, link)) in ports.iter().enumerate() {
            self.set_link(i, *link);
        }
    }

    fn restart(&mut self, now: Instant) {
        if self.is_running() {
            self.start(now);
        }
    }

    /// The bridge came up (`bstp_initialization`).
    pub fn start(&mut self, now: Instant) {
        // The bridge id: the lowest member MAC.
        let Some(mac) = self.ports.iter().map(|p| p.conf.mac).min() else {
            self.stop();
            return;
        };
        for p in &mut self.ports {
            p.port_id = (u16::from(p.conf.priority) << 8) | (p.conf.ifindex & 0xff) as u16;
        }
        let mut id = [0u8; 8];
        id[..2].copy_from_slice(&self.conf.priority.to_be_bytes());
        id[2..].copy_from_slice(&mac);
        self.bridge_id = u64::from_be_bytes(id);
        self.designated_root = self.bridge_id;
        self.root_path_cost = 0;
        self.root_port = None;
        self.max_age = secs(self.conf.max_age);
        self.hello_time = secs(self.conf.hello_time);
        self.forward_delay = secs(self.conf.forward_delay);
        self.tc_detected = false;
        self.tc = false;
        self.tcn_timer.stop();
        self.tc_timer.stop();
        if self.next_tick.is_none() {
            self.next_tick = Some(now + TICK);
        }
        self.at(now);
        for i in 0..self.ports.len() {
            self.enable_port(i);
            if !self.ports[i].link {
                self.disable_port(i);
            }
        }
        self.port_state_selection();
        self.config_bpdu_generation();
        self.hello_timer.start(0, self.phase);
    }

    /// The bridge went down (`bstp_stop`).
    pub fn stop(&mut self) {
        for p in &mut self.ports {
            p.state = PortState::Disabled;
            p.hold.stop();
            p.message_age.stop();
            p.forward_delay.stop();
        }
        self.next_tick = None;
        self.tc_timer.stop();
        self.tcn_timer.stop();
        self.hello_timer.stop();
        self.tc = false;
    }

    /// Run the ticks due by `now`.
    pub fn poll(&mut self, now: Instant) {
        let Some(mut next) = self.next_tick else {
            return;
        };
        // Far behind (a stopped process): one tick, not a burst of them.
        if now.saturating_duration_since(next) > Duration::from_secs(10) {
            next = now;
        }
        // Ticks run at their instant: timers they start start whole.
        self.phase = 0;
        while next <= now {
            self.tick();
            next += TICK;
        }
        if self.next_tick.is_some() {
            self.next_tick = Some(next);
        }
    }

    /// A BPDU arrived on port `ifindex` (`bstp_input`).
    pub fn input(&mut self, now: Instant, ifindex: u32, bpdu: &BpduRepr) {
        let Some(i) = self.port(ifindex) else {
            return;
        };
        if !self.is_running() {
            return;
        }
        self.at(now);
        match bpdu {
            BpduRepr::Config(c) => {
                self.counters.config_in += 1;
                self.received_config_bpdu(i, c)
            }
            BpduRepr::Tcn => {
                self.counters.tcn_in += 1;
                self.received_tcn_bpdu(i)
            }
        }
    }

    /// Note how far into the current tick `now` is.
    fn at(&mut self, now: Instant) {
        self.phase = match self.next_tick {
            Some(next) => {
                let gone = now.saturating_duration_since(next - TICK);
                // Rounded up: early by nothing, late by under 4 ms.
                (gone.as_micros() * 256)
                    .div_ceil(1_000_000)
                    .min(TICK_VAL as u128) as i32
            }
            None => 0,
        };
    }

    // ---- The protocol, after bridgestp.c.

    fn port(&self, ifindex: u32) -> Option<usize> {
        self.ports.iter().position(|p| p.conf.ifindex == ifindex)
    }

    fn set_link(&mut self, i: usize, up: bool) {
        self.ports[i].link = up;
        if !self.is_running() {
            return;
        }
        let disabled = self.ports[i].state == PortState::Disabled;
        if up && disabled {
            self.enable_port(i);
        } else if !up && !disabled {
            self.disable_port(i);
        }
    }

    fn is_root_bridge(&self) -> bool {
        self.designated_root == self.bridge_id
    }

    fn is_designated(&self, i: usize) -> bool {
        let p = &self.ports[i];
        p.designated_bridge == self.bridge_id && p.designated_port == p.port_id
    }

    fn send(&mut self, i: usize, bpdu: BpduRepr) {
        let p = &self.ports[i];
        if p.link {
            match bpdu {
                BpduRepr::Config(_) => self.counters.config_out += 1,
                BpduRepr::Tcn => self.counters.tcn_out += 1,
            }
            self.out.push((p.conf.ifindex, bpdu));
        }
    }

    fn transmit_config(&mut self, i: usize) {
        if self.ports[i].hold.active {
            self.ports[i].config_pending = true;
            return;
        }
        let message_age = match self.root_port {
            Some(r) if !self.is_root_bridge() => {
                self.ports[r].message_age.value.max(0) as u32 + MESSAGE_AGE_INCR
            }
            _ => 0,
        };
        if message_age >= u32::from(self.max_age) {
            return;
        }
        let phase = self.phase;
        let p = &mut self.ports[i];
        let c = ConfigBpdu {
            root_id: self.designated_root,
            root_path_cost: self.root_path_cost,
            bridge_id: self.bridge_id,
            port_id: p.port_id,
            message_age: message_age as u16,
            max_age: self.max_age,
            hello_time: self.hello_time,
            forward_delay: self.forward_delay,
            topology_change: self.tc,
            topology_change_ack: p.tc_ack,
        };
        p.tc_ack = false;
        p.config_pending = false;
        p.hold.start(0, phase);
        self.send(i, BpduRepr::Config(c));
    }

    fn transmit_tcn(&mut self) {
        if let Some(r) = self.root_port {
            self.send(r, BpduRepr::Tcn);
        }
    }

    /// `bstp_supersedes_port_info`
    fn supersedes_port_info(&self, i: usize, c: &ConfigBpdu) -> bool {
        let p = &self.ports[i];
        let ours = (p.designated_root, p.designated_cost, p.designated_bridge);
        let theirs = (c.root_id, c.root_path_cost, c.bridge_id);
        if theirs != ours {
            return theirs < ours;
        }
        self.bridge_id != c.bridge_id || c.port_id <= p.designated_port
    }

    fn record_config_information(&mut self, i: usize, c: &ConfigBpdu) {
        let phase = self.phase;
        let p = &mut self.ports[i];
        p.designated_root = c.root_id;
        p.designated_cost = c.root_path_cost;
        p.designated_bridge = c.bridge_id;
        p.designated_port = c.port_id;
        p.message_age.start(c.message_age, phase);
    }

    fn record_config_timeout_values(&mut self, c: &ConfigBpdu) {
        self.max_age = c.max_age;
        self.hello_time = c.hello_time;
        self.forward_delay = c.forward_delay;
        self.tc = c.topology_change;
    }

    fn config_bpdu_generation(&mut self) {
        for i in 0..self.ports.len() {
            if self.is_designated(i) && self.ports[i].state != PortState::Disabled {
                self.transmit_config(i);
            }
        }
    }

    fn configuration_update(&mut self) {
        self.root_selection();
        self.designated_port_selection();
    }

    /// `bstp_root_selection`: the best port toward a root better than us.
    fn root_selection(&mut self) {
        let key = |p: &Port| {
            (
                p.designated_root,
                p.designated_cost.saturating_add(p.conf.path_cost),
                p.designated_bridge,
                p.designated_port,
                p.port_id,
            )
        };
        let root = (0..self.ports.len())
            .filter(|&i| {
                let p = &self.ports[i];
                !self.is_designated(i)
                    && p.state != PortState::Disabled
                    && p.designated_root < self.bridge_id
            })
            .min_by_key(|&i| key(&self.ports[i]));
        self.root_port = root;
        match root {
            None => {
                self.designated_root = self.bridge_id;
                self.root_path_cost = 0;
            }
            Some(r) => {
                let p = &self.ports[r];
                self.designated_root = p.designated_root;
                self.root_path_cost = p.designated_cost.saturating_add(p.conf.path_cost);
            }
        }
    }

    fn designated_port_selection(&mut self) {
        for i in 0..self.ports.len() {
            let p = &self.ports[i];
            let designate = self.is_designated(i)
                || p.designated_root != self.designated_root
                || (self.root_path_cost, self.bridge_id, p.port_id)
                    <= (p.designated_cost, p.designated_bridge, p.designated_port);
            if designate {
                self.become_designated_port(i);
            }
        }
    }

    fn become_designated_port(&mut self, i: usize) {
        let (root, cost, id) = (self.designated_root, self.root_path_cost, self.bridge_id);
        let p = &mut self.ports[i];
        p.designated_root = root;
        p.designated_cost = cost;
        p.designated_bridge = id;
        p.designated_port = p.port_id;
    }

    fn port_state_selection(&mut self) {
        for i in 0..self.ports.len() {
            if Some(i) == self.root_port {
                let p = &mut self.ports[i];
                p.config_pending = false;
                p.tc_ack = false;
                self.make_forwarding(i);
            } else if self.is_designated(i) {
                self.ports[i].message_age.stop();
                self.make_forwarding(i);
            } else {
                let p = &mut self.ports[i];
                p.config_pending = false;
                p.tc_ack = false;
                self.make_blocking(i);
            }
        }
    }

    fn make_forwarding(&mut self, i: usize) {
        let phase = self.phase;
        let p = &mut self.ports[i];
        if p.state == PortState::Blocking {
            p.state = PortState::Listening;
            p.forward_delay.start(0, phase);
        }
    }

    fn make_blocking(&mut self, i: usize) {
        let p = &self.ports[i];
        if matches!(p.state, PortState::Disabled | PortState::Blocking) {
            return;
        }
        if p.state.learns() && p.change_detection {
            self.topology_change_detection();
        }
        let p = &mut self.ports[i];
        p.state = PortState::Blocking;
        p.forward_delay.stop();
    }

    fn topology_change_detection(&mut self) {
        if self.is_root_bridge() {
            self.tc = true;
            self.tc_timer.start(0, self.phase);
        } else if !self.tc_detected {
            self.transmit_tcn();
            self.tcn_timer.start(0, self.phase);
        }
        self.tc_detected = true;
    }

    fn topology_change_acknowledged(&mut self) {
        self.tc_detected = false;
        self.tcn_timer.stop();
    }

    fn acknowledge_topology_change(&mut self, i: usize) {
        self.ports[i].tc_ack = true;
        self.transmit_config(i);
    }

    fn received_config_bpdu(&mut self, i: usize, c: &ConfigBpdu) {
        if self.ports[i].state == PortState::Disabled {
            return;
        }
        let was_root = self.is_root_bridge();
        if self.supersedes_port_info(i, c) {
            self.record_config_information(i, c);
            self.configuration_update();
            self.port_state_selection();
            if was_root && !self.is_root_bridge() {
                self.hello_timer.stop();
                if self.tc_detected {
                    self.tc_timer.stop();
                    self.transmit_tcn();
                    self.tcn_timer.start(0, self.phase);
                }
            }
            if Some(i) == self.root_port {
                self.record_config_timeout_values(c);
                self.config_bpdu_generation();
                if c.topology_change_ack {
                    self.topology_change_acknowledged();
                }
            }
        } else if self.is_designated(i) {
            self.transmit_config(i);
        }
    }

    fn received_tcn_bpdu(&mut self, i: usize) {
        if self.ports[i].state != PortState::Disabled && self.is_designated(i) {
            self.topology_change_detection();
            self.acknowledge_topology_change(i);
        }
    }

    /// We became the root: our own times, and tell the others.
    fn became_root(&mut self) {
        self.max_age = secs(self.conf.max_age);
        self.hello_time = secs(self.conf.hello_time);
        self.forward_delay = secs(self.conf.forward_delay);
        self.topology_change_detection();
        self.tcn_timer.stop();
        self.config_bpdu_generation();
        self.hello_timer.start(0, self.phase);
    }

    fn message_age_timer_expiry(&mut self, i: usize) {
        let was_root = self.is_root_bridge();
        self.become_designated_port(i);
        self.configuration_update();
        self.port_state_selection();
        if self.is_root_bridge() && !was_root {
            self.became_root();
        }
    }

    fn forward_delay_timer_expiry(&mut self, i: usize) {
        match self.ports[i].state {
            PortState::Listening => {
                self.ports[i].state = PortState::Learning;
                self.ports[i].forward_delay.start(0, self.phase);
            }
            PortState::Learning => {
                self.ports[i].state = PortState::Forwarding;
                if self.designated_for_some_port() && self.ports[i].change_detection {
                    self.topology_change_detection();
                }
            }
            _ => {}
        }
    }

    fn designated_for_some_port(&self) -> bool {
        self.ports
            .iter()
            .any(|p| p.designated_bridge == self.bridge_id)
    }

    fn enable_port(&mut self, i: usize) {
        self.become_designated_port(i);
        let p = &mut self.ports[i];
        p.state = PortState::Blocking;
        p.tc_ack = false;
        p.config_pending = false;
        p.change_detection = true;
        p.message_age.stop();
        p.forward_delay.stop();
        p.hold.stop();
        self.port_state_selection();
    }

    fn disable_port(&mut self, i: usize) {
        let was_root = self.is_root_bridge();
        self.become_designated_port(i);
        let p = &mut self.ports[i];
        p.state = PortState::Disabled;
        p.tc_ack = false;
        p.config_pending = false;
        p.message_age.stop();
        p.forward_delay.stop();
        self.configuration_update();
        self.port_state_selection();
        if self.is_root_bridge() && !was_root {
            self.became_root();
        }
    }

    /// `bstp_tick`
    fn tick(&mut self) {
        if self.hello_timer.expired(self.hello_time) {
            self.config_bpdu_generation();
            self.hello_timer.start(0, self.phase);
        }
        if self.tcn_timer.expired(secs(self.conf.hello_time)) {
            self.transmit_tcn();
            self.tcn_timer.start(0, self.phase);
        }
        // Up to 2 × 255 s: more than a u16 of 1/256 s.
        let tc_time = i32::from(secs(self.conf.max_age)) + i32::from(secs(self.conf.forward_delay));
        if self.tc_timer.expired(tc_time) {
            self.tc_detected = false;
            self.tc = false;
        }
        for i in 0..self.ports.len() {
            if self.ports[i].message_age.expired(self.max_age) {
                self.message_age_timer_expiry(i);
            }
        }
        for i in 0..self.ports.len() {
            if self.ports[i].forward_delay.expired(self.forward_delay) {
                self.forward_delay_timer_expiry(i);
            }
            if self.ports[i].hold.expired(HOLD_TIME) && self.ports[i].config_pending {
                self.transmit_config(i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: BridgeConf = BridgeConf {
        priority: 0x8000,
        hello_time: 1,
        max_age: 6,
        forward_delay: 4,
    };

    /// One end of a link: (bridge, ifindex).
    type End = (usize, u32);

    /// Bridges joined by point-to-point links, on a fake clock.
    struct Net {
        now: Instant,
        bridges: Vec<Stp>,
        /// (bridge, ifindex) ↔ (bridge, ifindex), up.
        links: Vec<(End, End, bool)>,
        delivered: usize,
    }

    fn mac(b: usize, ifindex: u32) -> Mac {
        [2, 0, 0, 0, b as u8 + 1, ifindex as u8]
    }

    impl Net {
        /// `n` bridges; `links` as (bridge, bridge) pairs, each getting the
        /// next free interface index on both.
        fn new(n: usize, links: &[(usize, usize)], prio: &[u16]) -> Net {
            let now = Instant::now();
            let mut ports: Vec<Vec<(PortConf, bool)>> = vec![Vec::new(); n];
            let mut net = Net {
                now,
                bridges: Vec::new(),
                links: Vec::new(),
                delivered: 0,
            };
            for &(a, b) in links {
                let ia = ports[a].len() as u32 + 1;
                let ib = ports[b].len() as u32 + 1;
                for (x, i) in [(a, ia), (b, ib)] {
                    ports[x].push((
                        PortConf {
                            ifindex: i,
                            mac: mac(x, i),
                            priority: 0x80,
                            path_cost: 55,
                        },
                        true,
                    ));
                }
                net.links.push(((a, ia), (b, ib), true));
            }
            for (x, p) in ports.iter().enumerate() {
                let mut s = Stp::new(BridgeConf {
                    priority: prio[x],
                    ..FAST
                });
                s.set_ports(p, now);
                s.start(now);
                net.bridges.push(s);
            }
            net.deliver();
            net
        }

        fn deliver(&mut self) {
            loop {
                let mut any = false;
                for x in 0..self.bridges.len() {
                    for (ifindex, bpdu) in self.bridges[x].take_output() {
                        any = true;
                        for &(a, b, up) in &self.links {
                            let to = if a == (x, ifindex) {
                                b
                            } else if b == (x, ifindex) {
                                a
                            } else {
                                continue;
                            };
                            if up {
                                self.delivered += 1;
                                self.bridges[to.0].input(self.now, to.1, &bpdu);
                            }
                        }
                    }
                }
                if !any {
                    return;
                }
            }
        }

        /// Run the clock `d` forward, tick by tick.
        fn run(&mut self, d: Duration) {
            let end = self.now + d;
            while self.now < end {
                self.now += TICK;
                for b in &mut self.bridges {
                    b.poll(self.now);
                }
                self.deliver();
            }
        }

        /// Run until `f` holds; the time it took.
        fn until(&mut self, limit: Duration, f: impl Fn(&Net) -> bool) -> Duration {
            let start = self.now;
            while !f(self) {
                assert!(self.now - start < limit, "not within {limit:?}");
                self.run(TICK);
            }
            self.now - start
        }

        fn states(&self) -> Vec<Vec<PortState>> {
            self.bridges
                .iter()
                .map(|b| b.ports.iter().map(|p| p.state).collect())
                .collect()
        }

        fn count(&self, s: PortState) -> usize {
            self.states().iter().flatten().filter(|&&x| x == s).count()
        }

        fn converged(&self) -> bool {
            self.count(PortState::Blocking) + self.count(PortState::Forwarding)
                == self.states().iter().flatten().count()
        }

        /// Cut link `l`: both ends see their member go down.
        fn cut(&mut self, l: usize) {
            self.links[l].2 = false;
            let ((a, ia), (b, ib), _) = self.links[l];
            for (x, i) in [(a, ia), (b, ib)] {
                let conf: Vec<_> = self.bridges[x]
                    .ports
                    .iter()
                    .map(|p| (p.conf, p.conf.ifindex != i && p.link))
                    .collect();
                let now = self.now;
                self.bridges[x].set_ports(&conf, now);
            }
            self.deliver();
        }

        /// Break link `l` silently: BPDUs are lost, both ends stay up.
        fn silence(&mut self, l: usize) {
            self.links[l].2 = false;
        }
    }

    const BOUND: Duration = Duration::from_secs(2 * 4 + 6);

    #[test]
    fn two_bridges_two_links_block_one_port() {
        let mut n = Net::new(2, &[(0, 1), (0, 1)], &[0x1000, 0x8000]);
        n.until(BOUND, Net::converged);
        assert_eq!(n.count(PortState::Blocking), 1);
        // Bridge 0 is the root; both its ports forward; bridge 1's root
        // port is the one toward the lower port id, the other blocks.
        assert_eq!(n.bridges[0].root_id(), n.bridges[0].bridge_id());
        assert_eq!(n.bridges[1].root_id(), n.bridges[0].bridge_id());
        assert_eq!(n.bridges[1].root_port(), Some(1));
        assert_eq!(n.bridges[1].root_path_cost(), 55);
        assert_eq!(
            n.states(),
            vec![
                vec![PortState::Forwarding, PortState::Forwarding],
                vec![PortState::Forwarding, PortState::Blocking]
            ]
        );
        // Steady: hellos keep it so.
        n.run(Duration::from_secs(30));
        assert_eq!(n.states()[1], [PortState::Forwarding, PortState::Blocking]);
    }

    #[test]
    fn ports_go_through_listening_and_learning() {
        let mut n = Net::new(2, &[(0, 1)], &[0x1000, 0x8000]);
        assert_eq!(n.states()[1], [PortState::Listening]);
        n.run(Duration::from_secs(4));
        assert_eq!(n.states()[1], [PortState::Learning]);
        n.run(Duration::from_secs(4));
        assert_eq!(n.states()[1], [PortState::Forwarding]);
    }

    /// A port enabled between two ticks listens no less than the forward
    /// delay, and at most a tick more.
    #[test]
    fn timers_started_between_ticks_are_never_early() {
        for offset_ms in [1, 100, 249] {
            let t0 = Instant::now();
            let port = PortConf {
                ifindex: 1,
                mac: mac(0, 1),
                priority: 0x80,
                path_cost: 55,
            };
            let mut s = Stp::new(FAST);
            s.set_ports(&[(port, false)], t0);
            s.start(t0);
            let up = t0 + Duration::from_millis(10 * TICK.as_millis() as u64 + offset_ms);
            s.poll(up);
            s.set_ports(&[(port, true)], up);
            assert_eq!(s.state(1), PortState::Listening);
            let mut now = up;
            while s.state(1) == PortState::Listening {
                now += Duration::from_millis(1);
                s.poll(now);
            }
            let took = now - up;
            assert!(
                took >= Duration::from_secs(4) && took <= Duration::from_secs(4) + TICK,
                "{offset_ms} ms into a tick: listened {took:?}"
            );
        }
    }

    /// The extremes brconfig takes, and a root announcing zero times: no
    /// overflow, no panic, the tree still runs.
    #[test]
    fn extreme_times() {
        for (hello, max_age, fwd) in [(255, 255, 255), (1, 1, 1)] {
            let conf = BridgeConf {
                priority: 0xffff,
                hello_time: hello,
                max_age,
                forward_delay: fwd,
            };
            let mut n = Net::new(2, &[(0, 1), (0, 1)], &[0, 0xffff]);
            let now = n.now;
            for b in &mut n.bridges {
                b.set_conf(conf, now);
            }
            n.deliver();
            n.run(Duration::from_secs(600));
            assert!(n.bridges.iter().all(|b| b.is_running()));
        }
        let mut n = Net::new(2, &[(0, 1)], &[0x1000, 0x8000]);
        let zero = BpduRepr::Config(ConfigBpdu {
            root_id: 1,
            bridge_id: 1,
            port_id: 1,
            ..ConfigBpdu::default()
        });
        let now = n.now;
        n.bridges[1].input(now, 1, &zero);
        n.run(Duration::from_secs(30));
        assert!(n.bridges[1].is_running());
    }

    #[test]
    fn equal_priorities_elect_the_lowest_mac() {
        let mut n = Net::new(3, &[(0, 1), (1, 2), (2, 0)], &[0x8000; 3]);
        n.until(BOUND, Net::converged);
        let root = n.bridges[0].bridge_id();
        assert!(n.bridges.iter().all(|b| b.root_id() == root));
        assert_eq!(n.count(PortState::Blocking), 1);
    }

    #[test]
    fn a_cut_root_port_moves_to_the_blocked_one() {
        let mut n = Net::new(2, &[(0, 1), (0, 1)], &[0x1000, 0x8000]);
        n.until(BOUND, Net::converged);
        n.cut(0);
        assert_eq!(n.bridges[1].root_port(), Some(2));
        let t = n.until(BOUND, |n| n.states()[1][1] == PortState::Forwarding);
        assert!(t <= Duration::from_secs(8) + TICK, "{t:?}");
        assert_eq!(n.states()[1][0], PortState::Disabled);
    }

    #[test]
    fn lost_hellos_age_out_in_max_age() {
        let mut n = Net::new(2, &[(0, 1), (0, 1)], &[0x1000, 0x8000]);
        n.until(BOUND, Net::converged);
        n.silence(0);
        let t = n.until(BOUND, |n| n.states()[1][1] == PortState::Forwarding);
        assert!(t > Duration::from_secs(8), "{t:?}");
        assert_eq!(n.bridges[1].root_port(), Some(2));
        // The root port's former segment: bridge 1 is its designated
        // bridge now.
        assert_eq!(n.states()[1][0], PortState::Forwarding);
    }

    #[test]
    fn topology_change_reaches_the_root_and_back() {
        let mut n = Net::new(2, &[(0, 1), (0, 1)], &[0x1000, 0x8000]);
        n.until(BOUND, Net::converged);
        n.run(Duration::from_secs(20));
        assert!(!n.bridges[1].topology_change());
        n.cut(0);
        // Bridge 1's blocked port forwards: a TCN up, TC set by the root,
        // echoed in its BPDUs down to bridge 1, which ages fast.
        n.until(BOUND, |n| n.bridges[1].topology_change());
        assert!(n.bridges[0].topology_change());
        assert!(n.bridges[1].counters.tcn_out >= 1);
        assert!(n.bridges[0].counters.tcn_in >= 1);
        assert!(!n.bridges[1].tc_detected, "the root acknowledged");
        // It ends after max age + forward delay.
        n.run(Duration::from_secs(11));
        assert!(!n.bridges[0].topology_change());
        assert!(!n.bridges[1].topology_change());
    }

    #[test]
    fn a_new_priority_takes_effect_at_once() {
        let mut n = Net::new(2, &[(0, 1), (0, 1)], &[0x1000, 0x8000]);
        n.until(BOUND, Net::converged);
        let now = n.now;
        n.bridges[1].set_conf(
            BridgeConf {
                priority: 0x0800,
                ..FAST
            },
            now,
        );
        n.deliver();
        assert_eq!(n.bridges[0].root_id(), n.bridges[1].bridge_id());
        n.until(BOUND, Net::converged);
        assert_eq!(
            n.states(),
            vec![
                vec![PortState::Forwarding, PortState::Blocking],
                vec![PortState::Forwarding, PortState::Forwarding]
            ]
        );
    }

    #[test]
    fn path_cost_picks_the_root_port() {
        let mut n = Net::new(2, &[(0, 1), (0, 1)], &[0x1000, 0x8000]);
        let mut ports: Vec<_> = n.bridges[1].ports.iter().map(|p| (p.conf, true)).collect();
        ports[0].0.path_cost = 200;
        let now = n.now;
        n.bridges[1].set_ports(&ports, now);
        n.deliver();
        n.until(BOUND, Net::converged);
        assert_eq!(n.bridges[1].root_port(), Some(2));
        assert_eq!(n.bridges[1].root_path_cost(), 55);
        assert_eq!(n.states()[1], [PortState::Blocking, PortState::Forwarding]);
    }

    #[test]
    fn stopped_bridge_sends_nothing_and_disables_ports() {
        let mut n = Net::new(2, &[(0, 1)], &[0x1000, 0x8000]);
        n.bridges[1].stop();
        let heard = n.bridges[1].counters.config_in;
        assert_eq!(n.states()[1], [PortState::Disabled]);
        assert_eq!(n.bridges[1].poll_at(), None);
        n.run(Duration::from_secs(3));
        assert!(n.bridges[1].take_output().is_empty());
        // The BPDUs arriving meanwhile change nothing.
        assert!(n.bridges[0].counters.config_out >= 3);
        assert_eq!(n.bridges[1].counters.config_in, heard);
    }

    #[test]
    fn hold_timer_limits_config_bpdus() {
        let mut n = Net::new(2, &[(0, 1)], &[0x1000, 0x8000]);
        n.until(BOUND, Net::converged);
        let sent = n.bridges[0].counters.config_out;
        n.run(Duration::from_secs(10));
        let per_s = (n.bridges[0].counters.config_out - sent) as f64 / 10.0;
        assert!((0.9..=1.1).contains(&per_s), "{per_s} hellos a second");
    }
}
